// The batched data path: sealing and opening a batch at a time in the addon (sealBatch/openBatch),
// and the device's batch entry points (insideBatch/outsideBatch) against the one-by-one path.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { counterNonce } from '../src/crypto/aead.js';
import { nativeAead } from '../src/crypto/native-aead.js';
import { loadNative } from '../src/tun/native.js';
import type { Endpoint } from '../src/tunnel/endpoint.js';
import { EP_A, EP_B, makePair, pump } from './helpers/device-pair.js';
import { ipv4Packet, ipv6Packet } from './helpers/ip-packet.js';
import { toHex } from './helpers/vectors.js';

const HEAD = 16;
const TAIL = 32;

/** Packets laid out as the TUN reader lays them out: 16-byte aligned, head and tail room around each. */
function layout(packets: Uint8Array[]): { buf: Uint8Array; offsets: Int32Array; lengths: Int32Array } {
  const offsets = new Int32Array(packets.length);
  const lengths = new Int32Array(packets.length);
  let used = 0;
  for (let i = 0; i < packets.length; i++) {
    const pos = (used + 15) & ~15;
    offsets[i] = pos + HEAD;
    lengths[i] = packets[i].length;
    used = pos + HEAD + packets[i].length + TAIL;
  }
  const buf = new Uint8Array(used);
  packets.forEach((p, i) => buf.set(p, offsets[i]));
  return { buf, offsets, lengths };
}

function padded(len: number, mtu: number): number {
  return Math.min((len + 15) & ~15, Math.max(mtu, len));
}

/** One transport message as the whitepaper builds it, sealed by noble: the reference. */
function reference(key: Uint8Array, receiver: number, counter: number, packet: Uint8Array, mtu: number): Uint8Array {
  const p = new Uint8Array(padded(packet.length, mtu));
  p.set(packet);
  const sealed = chacha20poly1305(key, counterNonce(counter)).encrypt(p);
  const msg = new Uint8Array(16 + sealed.length);
  const dv = new DataView(msg.buffer);
  msg[0] = 4;
  dv.setUint32(4, receiver, true);
  dv.setUint32(8, counter >>> 0, true);
  dv.setUint32(12, Math.floor(counter / 2 ** 32), true);
  msg.set(sealed, 16);
  return msg;
}

t.test('the addon seals a batch exactly as the whitepaper seals one message at a time', async (t) => {
  const addon = loadNative();
  t.equal(addon.aeadBackend(), 'direct', "this Node's OpenSSL cores are used directly (no EVP per packet)");
  const key = new Uint8Array(randomBytes(32));
  const sizes = [20, 21, 100, 1279, 1280, 1400, 1420];
  const packets = sizes.map((n) => new Uint8Array(randomBytes(n)));
  const { buf, offsets, lengths } = layout(packets);
  const counter = 2 ** 32 - 3; // crosses the 32-bit boundary inside the batch
  const total = addon.sealBatch(key, 0xa1b2c3d4, counter >>> 0, Math.floor(counter / 2 ** 32), 1420, buf, offsets, lengths, 0, sizes.length);
  let expected = 0;
  for (let i = 0; i < sizes.length; i++) {
    const ref = reference(key, 0xa1b2c3d4, counter + i, packets[i], 1420);
    expected += ref.length;
    t.equal(lengths[i], ref.length, `message ${i} has the padded size`);
    t.equal(toHex(buf.subarray(offsets[i], offsets[i] + lengths[i])), toHex(ref), `message ${i} (${sizes[i]} bytes) is byte for byte the reference`);
  }
  t.equal(total, expected, 'returns the bytes of all messages');

  // Open them again, in place, with one tampered and one replayed counter field.
  const plain = new Int32Array(sizes.length);
  const counters = new Float64Array(sizes.length);
  buf[offsets[3] + 40] ^= 0x01; // ciphertext of message 3
  t.equal(addon.openBatch(key, buf, offsets, lengths, 0, sizes.length, plain, counters), sizes.length);
  for (let i = 0; i < sizes.length; i++) {
    t.equal(counters[i], counter + i, `counter of message ${i}`);
    if (i === 3) {
      t.equal(plain[i], -1, 'a tampered message does not open');
      continue;
    }
    t.equal(plain[i], padded(sizes[i], 1420), `message ${i} opens to its padded length`);
    t.equal(toHex(buf.subarray(offsets[i] + 16, offsets[i] + 16 + sizes[i])), toHex(packets[i]), `message ${i} decrypts in place`);
  }
  // A counter at 2^53 is not opened (the replay window could not hold it exactly).
  const big = layout([new Uint8Array(64)]);
  big.buf.set([4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0], big.offsets[0] - 16);
  const bigOffsets = new Int32Array([big.offsets[0] - 16]);
  const bigLengths = new Int32Array([16 + 64 + 16]);
  addon.openBatch(key, big.buf, bigOffsets, bigLengths, 0, 1, plain, counters);
  t.same([plain[0], counters[0]], [-1, -1], 'a counter of 2^53 or more is refused unopened');
});

t.test('sealBatch refuses a batch without room and leaves every packet as it was', async (t) => {
  const addon = loadNative();
  const key = new Uint8Array(32).fill(9);
  const packets = [new Uint8Array(100).fill(1), new Uint8Array(100).fill(2)];
  const { buf, offsets, lengths } = layout(packets);
  const before = buf.slice();
  offsets[0] = 8; // less than a header's room before it
  t.equal(addon.sealBatch(key, 1, 0, 0, 1420, buf, offsets, lengths, 0, 2), -1);
  t.equal(toHex(buf), toHex(before), 'nothing written');
  const tight = layout([new Uint8Array(100)]);
  const short = tight.buf.subarray(0, tight.offsets[0] + 100 + 10); // no room for padding and tag
  t.equal(addon.sealBatch(key, 1, 0, 0, 1420, short, tight.offsets, tight.lengths, 0, 1), -1);
  t.equal(addon.sealBatch(key, 1, 0, 0, 1420, buf, offsets, lengths, 1, 5), -1, 'a range past the arrays is refused');
});

t.test('the EVP backend (MESHD_NATIVE_AEAD=evp) produces the same messages', async (t) => {
  const script = `
    const { loadNative } = await import(${JSON.stringify(new URL('../src/tun/native.js', import.meta.url).href)});
    const a = loadNative();
    const key = new Uint8Array(32).map((_, i) => i * 3 + 1);
    const buf = new Uint8Array(4096);
    const offsets = new Int32Array([16, 2048]);
    const lengths = new Int32Array([33, 1420]);
    for (let i = 0; i < buf.length; i++) buf[i] = (i * 7) & 255;
    a.sealBatch(key, 77, 5, 1, 1420, buf, offsets, lengths, 0, 2);
    const hex = Buffer.from(buf).toString('hex');
    const plain = new Int32Array(2), counters = new Float64Array(2);
    a.openBatch(key, buf, offsets, lengths, 0, 2, plain, counters);
    process.stdout.write(JSON.stringify({ backend: a.aeadBackend(), hex, plain: [...plain] }));`;
  const run = (env: Record<string, string>) =>
    JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env } }).toString()) as { backend: string; hex: string; plain: number[] };
  const direct = run({});
  const evp = run({ MESHD_NATIVE_AEAD: 'evp' });
  t.equal(direct.backend, 'direct');
  t.equal(evp.backend, 'evp');
  t.equal(evp.hex, direct.hex, 'byte for byte the same sealed buffer');
  t.same(evp.plain, [48, 1420]);
  t.same(direct.plain, [48, 1420]);
});

t.test('with helper threads (MESHD_AEAD_THREADS) a batch seals and opens byte for byte as on one thread', async (t) => {
  const addon = loadNative();
  t.teardown(() => void addon.setAeadThreads(1));
  const key = new Uint8Array(randomBytes(32));
  const sizes = Array.from({ length: 64 }, (_, i) => (i % 7 === 0 ? 0 : 1 + ((i * 389) % 1420)));
  const packets = sizes.map((n) => new Uint8Array(randomBytes(n)));
  const one = layout(packets);
  t.equal(addon.setAeadThreads(1), 1);
  const counter = 2 ** 32 - 20;
  const total = addon.sealBatch(key, 7, counter >>> 0, Math.floor(counter / 2 ** 32), 1420, one.buf, one.offsets, one.lengths, 0, sizes.length);
  t.equal(addon.setAeadThreads(4), 4, 'three helpers start');
  t.equal(addon.setAeadThreads(99), 8, 'at most eight threads');
  t.equal(addon.setAeadThreads(3), 3, 'helpers beyond the number asked for stop');
  // Many batches, each of a size the helpers split differently (fewer packets than a chunk: none),
  // some right after another (helpers spinning), some after a pause (helpers asleep on the futex).
  let same = 0;
  for (let round = 0; round < 300; round++) {
    const n = round % 5 === 0 ? 3 : sizes.length - (round % 17);
    const many = layout(packets.slice(0, n));
    const got = addon.sealBatch(key, 7, counter >>> 0, Math.floor(counter / 2 ** 32), 1420, many.buf, many.offsets, many.lengths, 0, n);
    const expected = n === sizes.length ? total : Array.from(one.lengths.subarray(0, n)).reduce((a, b) => a + b, 0);
    if (got === expected && toHex(many.buf.subarray(0, one.offsets[n - 1] + one.lengths[n - 1])) === toHex(one.buf.subarray(0, one.offsets[n - 1] + one.lengths[n - 1]))) same++;
    if (round % 50 === 0) await new Promise((r) => setTimeout(r, 2)); // past the helpers' spin: asleep
  }
  t.equal(same, 300, 'every batch is the one-thread batch, byte for byte');
  const plain = new Int32Array(sizes.length);
  const counters = new Float64Array(sizes.length);
  one.buf[one.offsets[10] + 20] ^= 1;
  addon.openBatch(key, one.buf, one.offsets, one.lengths, 0, sizes.length, plain, counters);
  let opened = 0;
  for (let i = 0; i < sizes.length; i++) {
    if (i === 10) t.equal(plain[i], -1, 'the tampered message does not open');
    else if (plain[i] === padded(sizes[i], 1420) && counters[i] === counter + i && toHex(one.buf.subarray(one.offsets[i] + 16, one.offsets[i] + 16 + sizes[i])) === toHex(packets[i])) opened++;
  }
  t.equal(opened, sizes.length - 1, 'every other message opens in place to its packet');
  t.equal(addon.setAeadThreads(1), 1, 'back to the caller alone');
});

t.test('the EVP backend runs no helper threads (its contexts are shared)', async (t) => {
  const script = `
    const { loadNative } = await import(${JSON.stringify(new URL('../src/tun/native.js', import.meta.url).href)});
    process.stdout.write(String(loadNative().setAeadThreads(4)));`;
  const got = execFileSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, MESHD_NATIVE_AEAD: 'evp' } }).toString();
  t.equal(got, '1');
});

t.test('insideBatch/outsideBatch: the same packets, counters and drops as one at a time', async (t) => {
  const aead = nativeAead();
  t.ok(aead?.sealBatch && aead.openBatch, 'the native backend batches');
  const p = makePair({ aead: aead!, inPlace: true });
  // A handshake, started by one packet (copied into staging), then the session is up both ways.
  const first = layout([ipv4Packet('10.0.0.1', '10.0.0.2')]);
  p.a.inside(first.buf.subarray(first.offsets[0], first.offsets[0] + first.lengths[0]));
  pump(p);
  t.equal(p.tunB.length, 1, 'the staged packet arrived after the handshake');
  const kpA = p.peerOfA.keypairs.current!;
  const sentBefore = kpA.sendCounter;

  // A batch: data for B (IPv4 and IPv6), something not IP, something with no route, more for B.
  const toB = [
    ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(randomBytes(1000))),
    ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(randomBytes(33))),
    ipv6Packet('fd00::1', 'fd00::2', new Uint8Array(randomBytes(500))),
  ];
  const notIp = new Uint8Array(30).fill(0x10);
  const noRoute = ipv4Packet('10.0.0.1', '10.9.9.9');
  const more = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(randomBytes(1380)));
  const batch = layout([...toB, notIp, noRoute, more]);
  const dropsBefore = { ...p.a.insideDrops.counts };
  p.a.insideBatch(batch.buf, batch.offsets, batch.lengths, 6);
  t.equal(p.a.out.net.length, 0, 'nothing went the one-by-one way');
  t.same(
    p.a.out.runs.map((r) => [r.start, r.count, r.peerId]),
    [
      [0, 3, p.peerOfA.id],
      [5, 1, p.peerOfA.id],
    ],
    'two runs: the packets before and after the two that were dropped',
  );
  t.equal(p.a.insideDrops.counts['not-ip'] - dropsBefore['not-ip'], 1);
  t.equal(p.a.insideDrops.counts['no-route'] - dropsBefore['no-route'], 1);
  t.equal(kpA.sendCounter, sentBefore + 4, 'one counter per sealed packet');

  // Deliver the four messages to B as one received batch, plus a replay of the first and a
  // tampered copy of the second, and a handshake-type message that is not valid.
  const msgs: Uint8Array[] = [];
  for (const r of p.a.out.runs) for (let k = r.start; k < r.start + r.count; k++) msgs.push(r.buf.slice(r.offsets[k], r.offsets[k] + r.lengths[k]));
  p.a.out.clear();
  const tampered = msgs[1].slice();
  tampered[20] ^= 0x80;
  const bogusInit = new Uint8Array(148);
  bogusInit[0] = 1;
  const rx = [msgs[0], msgs[1], msgs[2], msgs[0], tampered, bogusInit, msgs[3]];
  const rxBuf = layout(rx);
  const from: Endpoint[] = rx.map(() => EP_A);
  const drops = { ...p.b.outsideDrops.counts };
  p.b.outsideBatch(rxBuf.buf, rxBuf.offsets, rxBuf.lengths, from, rx.length);
  const written = p.b.out.tun.map((x) => toHex(x));
  t.same(written, [...toB, more].map((x) => toHex(x)), 'B writes exactly the four packets, in order');
  const d = (k: keyof typeof drops) => p.b.outsideDrops.counts[k] - drops[k];
  t.equal(d('replay'), 1, 'the replayed message is dropped as a replay');
  t.equal(d('decrypt-failed'), 1, 'the tampered one does not authenticate');
  t.equal(d('bad-mac1'), 1, 'the bogus initiation went the one-by-one way and was refused');
  t.equal(p.peerOfB.endpoint?.address, EP_A.address, 'B roamed to the source');
  p.b.out.clear();

  // Messages from two sources in one batch: each one roams the peer, in order.
  const again = layout([ipv4Packet('10.0.0.1', '10.0.0.2'), ipv4Packet('10.0.0.1', '10.0.0.2')]);
  p.a.insideBatch(again.buf, again.offsets, again.lengths, 2);
  const r = p.a.out.runs[0];
  const two = layout([0, 1].map((k) => r.buf.slice(r.offsets[r.start + k], r.offsets[r.start + k] + r.lengths[r.start + k])));
  p.a.out.clear();
  const other: Endpoint = { address: '198.51.100.7', port: 4000 };
  p.b.outsideBatch(two.buf, two.offsets, two.lengths, [EP_B, other], 2);
  t.equal(p.b.out.tun.length, 2);
  t.same(p.peerOfB.endpoint, other, 'the last source wins, as one message at a time');
});

t.test('without a batch AEAD the batch entry points fall back to one at a time', async (t) => {
  const p = makePair(); // node-crypto, not in place
  const first = layout([ipv4Packet('10.0.0.1', '10.0.0.2')]);
  p.a.insideBatch(first.buf, first.offsets, first.lengths, 1);
  pump(p);
  t.equal(p.tunB.length, 1);
  const batch = layout([ipv4Packet('10.0.0.1', '10.0.0.2'), ipv4Packet('10.0.0.1', '10.0.0.2')]);
  p.a.insideBatch(batch.buf, batch.offsets, batch.lengths, 2);
  t.equal(p.a.out.runs.length, 0);
  t.equal(p.a.out.net.length, 2, 'two datagrams, the one-by-one way');
  const rx = layout(p.a.out.net.map((x) => x.data));
  p.a.out.clear();
  p.b.outsideBatch(rx.buf, rx.offsets, rx.lengths, [EP_A, EP_A], 2);
  t.equal(p.b.out.tun.length, 2);
});
