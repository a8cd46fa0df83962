// The data path's native calls with their arrays bound once (native/src/bound.h): batch seal and
// open through nativeAead, bound to whichever arrays a call brings, and the UDP sender over a
// socket's own send arrays, checked against a real loopback socket.
import t from 'tap';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { nativeAead } from '../src/crypto/native-aead.js';
import { loadNative } from '../src/tun/native.js';
import { NativeUdpConn } from '../src/transport/native-udp.js';
import { toHex } from './helpers/vectors.js';

/** Two packets laid out with head and tail room, as the TUN reader lays them out. */
function batch(fill: number): { buf: Uint8Array; offsets: Int32Array; lengths: Int32Array } {
  const buf = new Uint8Array(4096);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 7 + fill) & 255;
  return { buf, offsets: new Int32Array([16, 2048]), lengths: new Int32Array([33, 1420]) };
}

t.test('bound seal and open give the bytes of the unbound calls, whichever arrays each call brings', async (t) => {
  const addon = loadNative();
  const aead = nativeAead()!;
  const key = new Uint8Array(randomBytes(32));
  const [one, two, refOne, refTwo] = [batch(1), batch(2), batch(1), batch(2)];
  // Alternating between two sets of arrays: each call must use its own, not the last bound.
  t.equal(aead.sealBatch!(key, 77, 2 ** 32 - 1, 1420, one.buf, one.offsets, one.lengths, 0, 2), addon.sealBatch(key, 77, 2 ** 32 - 1, 0, 1420, refOne.buf, refOne.offsets, refOne.lengths, 0, 2));
  t.equal(aead.sealBatch!(key, 78, 5, 1420, two.buf, two.offsets, two.lengths, 1, 1), addon.sealBatch(key, 78, 5, 0, 1420, refTwo.buf, refTwo.offsets, refTwo.lengths, 1, 1));
  t.equal(toHex(one.buf), toHex(refOne.buf), 'first set sealed as by sealBatch (counter across 2^32)');
  t.equal(toHex(two.buf), toHex(refTwo.buf), 'second set: only its second packet sealed');
  t.same([...one.offsets, ...one.lengths], [...refOne.offsets, ...refOne.lengths], 'offsets and lengths rewritten alike');

  const plain = new Int32Array(2);
  const counters = new Float64Array(2);
  aead.openBatch!(key, one.buf, one.offsets, one.lengths, 0, 2, plain, counters);
  t.same([...plain], [48, 1420], 'opened in place: padded lengths');
  t.same([...counters], [2 ** 32 - 1, 2 ** 32]);
  const before = batch(1);
  t.equal(toHex(one.buf.subarray(16, 16 + 33)), toHex(before.buf.subarray(16, 16 + 33)), 'the first plaintext is back where it was');

  const otherPlain = new Int32Array(4);
  const otherCounters = new Float64Array(4);
  aead.openBatch!(key, two.buf, two.offsets, two.lengths, 1, 1, otherPlain, otherCounters);
  t.same([...otherPlain], [0, 1420, 0, 0], 'a second set of arrays bound in turn: only its entry 1 written');
  t.equal(otherCounters[1], 5);
  key[0] ^= 1;
  aead.openBatch!(key, one.buf, one.offsets, one.lengths, 0, 1, plain, counters);
  t.equal(plain[0], -1, 'a wrong key: does not authenticate');
});

t.test('bound calls refuse what does not fit, and a refused open marks its entries unopened', async (t) => {
  const addon = loadNative();
  const aead = nativeAead()!;
  const key = new Uint8Array(32).fill(3);
  const b = batch(0);
  const params = new Float64Array(6);
  t.equal(addon.aeadBindSeal(b.buf, b.offsets, b.lengths, new Float64Array(5)), -22, 'params too short: EINVAL');
  t.equal(addon.sealBound(key), -1, 'nothing bound after a refused bind');
  t.equal(addon.aeadBindSeal(b.buf, new Uint8Array(8) as unknown as Int32Array, b.lengths, params), -22, 'wrong element type: EINVAL');
  t.equal(addon.aeadBindSeal(b.buf, b.offsets, b.lengths, params), 0);
  params.set([1, 0, 0, 1420, 1, 2]);
  t.equal(addon.sealBound(key), -1, 'a range past the arrays');
  params.set([-1, 0, 0, 1420, 0, 1]);
  t.equal(addon.sealBound(key), -1, 'a receiver index below 0');
  params.set([1, 2 ** 32, 0, 1420, 0, 1]);
  t.equal(addon.sealBound(key), -1, 'a counter half past 32 bits');
  params.set([1, 0, 0, 70000, 0, 1]);
  t.equal(addon.sealBound(key), -1, 'an MTU past 65535');
  params.set([1, 0, 0, 1420, 0.5, 1]);
  t.equal(addon.sealBound(key), -1, 'a fractional start');
  params.set([1, 0, 0, 1420, 0, 1]);
  t.equal(addon.sealBound(new Uint8Array(31)), -1, 'a 31-byte key');
  t.equal(addon.sealBound(key), 16 + 48 + 16, 'then a good call seals');

  const plain = new Int32Array([7, 7]);
  const counters = new Float64Array(2);
  aead.openBatch!(key, b.buf, b.offsets, b.lengths, 0, 1, plain, counters);
  t.same([...plain], [48, 7], 'the sealed packet opens; entry 1 untouched');
  aead.openBatch!(key, b.buf, b.offsets, b.lengths, 1, 5, plain, counters); // past the arrays: refused
  t.same([...plain], [48, -1], 'the refused range reads as not authenticated, not as what the array held');
});

t.test('the UDP sender sends from the socket buffer and from a bound external buffer, and lets go at close', async (t) => {
  const addon = loadNative();
  const rx = dgram.createSocket('udp4');
  rx.bind(0, '127.0.0.1');
  await once(rx, 'listening');
  t.teardown(() => rx.close());
  const got: string[] = [];
  rx.on('message', (m) => got.push(m.toString()));
  const conn = NativeUdpConn.bind(0, { onMessage: () => {}, onBatchEnd: () => {} });
  const to = { address: '127.0.0.1', port: rx.address().port };
  conn.queue(new TextEncoder().encode('copied'), to);
  const ext = new TextEncoder().encode('..run-one..run-two');
  conn.queueRun({ to, peerId: 'p', buf: ext, offsets: new Int32Array([2, 11]), lengths: new Int32Array([7, 7]), start: 0, count: 2 }, to);
  conn.flush();
  const ext2 = new TextEncoder().encode('other');
  conn.queueRun({ to, peerId: 'p', buf: ext2, offsets: new Int32Array([0]), lengths: new Int32Array([5]), start: 0, count: 1 }, to);
  conn.flush();
  for (let i = 0; i < 50 && got.length < 4; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(got.sort(), ['copied', 'other', 'run-one', 'run-two'], 'every datagram arrived, from both buffers');
  t.same(conn.stats, { sendErrors: 0, sendDropped: 0, truncated: 0, sourceRefused: 0 });
  conn.close();

  const id = addon.udpSenderCreate(-1, new Uint8Array(64), new Uint8Array(4), new Int32Array(4), new Int32Array(4), new Uint8Array(4 * 34), new Int32Array(3));
  t.ok(id >= 0, 'a sender (its fd is not checked until it sends)');
  t.equal(addon.udpSenderSend(id, 5, 0), -22, 'more datagrams than its arrays hold');
  t.equal(addon.udpSenderSend(id + 1000, 0, 0), -22, 'an unknown sender');
  t.equal(addon.udpSenderCreate(-1, new Uint8Array(64), new Uint8Array(4), new Int32Array(4), new Int32Array(4), new Uint8Array(4 * 34), new Int32Array(2)), -22, 'a result array too short');
  addon.udpSenderClose(id);
  t.equal(addon.udpSenderSend(id, 0, 0), -22, 'closed');
  const which = new Uint8Array([1]);
  const again = addon.udpSenderCreate(-1, new Uint8Array(64), which, new Int32Array(4), new Int32Array([4]), new Uint8Array(4 * 34), new Int32Array(3));
  t.equal(again, id, "a closed sender's id is used again");
  t.equal(addon.udpSenderSend(again, 1, 0), -22, 'a datagram in the external buffer with none bound');
  t.equal(addon.udpSenderExternal(again, new Uint8Array(2)), 0);
  t.equal(addon.udpSenderSend(again, 1, 0), -22, 'a datagram past the end of the external buffer');
  addon.udpSenderClose(again);
});
