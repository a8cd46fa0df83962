// Relay frames and the login proof: round trips, tolerance of trailing bytes, no throws on junk.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import {
  BatchWriter,
  FEATURE_BATCH,
  FRAME_SEND_BATCH,
  decodeRelayFrame,
  encodePeerPresent,
  forEachBatchPacket,
  encodeClientLogin,
  encodeKeepalive,
  encodeNotice,
  encodePeerGone,
  encodePing,
  encodePong,
  encodeRecvPacket,
  encodeSendPacket,
  encodeServerHello,
  encodeServerWelcome,
} from '../src/wire/relay.js';
import { sealLoginProof, verifyLoginProof } from '../src/crypto/relay-login.js';
import { generatePrivateKey, publicKeyOf } from '../src/crypto/keys.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));

t.test('frames round-trip', async (t) => {
  const k = rnd(32);
  const c = rnd(32);
  t.same(decodeRelayFrame(encodeServerHello(k, c)), { type: 'server-hello', version: 1, serverKey: k, challenge: c });
  const n = rnd(24);
  const s = rnd(48);
  t.same(decodeRelayFrame(encodeClientLogin(k, n, s, FEATURE_BATCH)), { type: 'client-login', clientKey: k, nonce: n, sealed: s, features: FEATURE_BATCH });
  t.same(decodeRelayFrame(encodeServerWelcome(30000, 65536, FEATURE_BATCH)), { type: 'server-welcome', keepaliveMs: 30000, maxFrameBytes: 65536, features: FEATURE_BATCH });
  t.same(decodeRelayFrame(encodePeerPresent(k)), { type: 'peer-present', key: k });
  const pkt = rnd(1200);
  const sp = decodeRelayFrame(encodeSendPacket(k, pkt));
  t.equal(sp.type, 'send-packet');
  if (sp.type === 'send-packet') t.same([...sp.key, ...sp.packet], [...k, ...pkt]);
  const rp = decodeRelayFrame(encodeRecvPacket(k, new Uint8Array(0)));
  t.equal(rp.type, 'recv-packet', 'an empty packet is still a frame');
  t.same(decodeRelayFrame(encodePeerGone(k, 0)), { type: 'peer-gone', key: k, reason: 0 });
  const d = rnd(8);
  t.same(decodeRelayFrame(encodePing(d)), { type: 'ping', data: d });
  t.same(decodeRelayFrame(encodePong(d)), { type: 'pong', data: d });
  t.same(decodeRelayFrame(encodeKeepalive()), { type: 'keepalive' });
  t.same(decodeRelayFrame(encodeNotice(1, 'relay shutting down')), { type: 'notice', code: 1, text: 'relay shutting down' });
});

t.test('fixed-size frames tolerate trailing bytes; short ones are refused', async (t) => {
  const hello = Buffer.concat([encodeServerHello(rnd(32), rnd(32)), Buffer.from('future fields')]);
  t.equal(decodeRelayFrame(hello).type, 'server-hello');
  t.same(decodeRelayFrame(encodeServerHello(rnd(32), rnd(32)).subarray(0, 40)), { type: 'invalid', reason: 'short' });
  t.same(decodeRelayFrame(new Uint8Array(0)), { type: 'invalid', reason: 'empty' });
  t.same(decodeRelayFrame(Uint8Array.of(0x7f)), { type: 'invalid', reason: 'unknown-type' });
});

t.test('login and welcome from before features had none', async (t) => {
  const login = encodeClientLogin(rnd(32), rnd(24), rnd(48)).subarray(0, 1 + 32 + 24 + 48);
  t.equal((decodeRelayFrame(login) as { features: number }).features, 0, 'a version-1 login without the field');
  const welcome = encodeServerWelcome(30000, 65536).subarray(0, 9);
  t.equal((decodeRelayFrame(welcome) as { features: number }).features, 0, 'a version-1 welcome without the field');
});

t.test('batches: written within the frame limit, read back packet by packet, malformed ones refused', async (t) => {
  const dst = rnd(32);
  const w = new BatchWriter(FRAME_SEND_BATCH, 4096);
  const packets = [rnd(1000), rnd(0), rnd(1400), rnd(32)];
  for (const p of packets) {
    t.ok(w.size === 0 || w.fits(dst, p.length), 'fits');
    w.add(dst, p);
  }
  t.notOk(w.fits(dst, 2000), 'a packet that would pass the limit does not fit');
  t.notOk(w.fits(rnd(32), 10), 'nor one for another destination');
  t.equal(w.count, 4);
  const frame = w.take();
  t.equal(w.size, 0, 'the writer starts afresh');
  t.ok(frame.length <= 4096);
  const f = decodeRelayFrame(frame);
  t.equal(f.type, 'send-batch');
  if (f.type !== 'send-batch') return;
  t.same([...f.key], [...dst]);
  t.equal(f.count, 4);
  const got: number[][] = [];
  forEachBatchPacket(f.body, (p) => got.push([...p]));
  t.same(got, packets.map((p) => [...p]), 'every packet, in order, intact');
  // The frame is rewritten in place by the relay; a second frame must not share its bytes.
  w.add(dst, packets[2]);
  w.add(dst, packets[2]);
  const second = w.take();
  frame.fill(0);
  t.equal(decodeRelayFrame(second).type, 'send-batch', 'taken frames do not alias each other');
  t.same(decodeRelayFrame(frame.subarray(0, 40)), { type: 'invalid', reason: 'unknown-type' });
  const truncated = Buffer.concat([Buffer.from([FRAME_SEND_BATCH]), dst, Buffer.from([0x01, 0x00, 1, 2, 3])]);
  t.same(decodeRelayFrame(truncated), { type: 'invalid', reason: 'bad-batch' }, 'an entry longer than the frame');
  const halfHeader = Buffer.concat([Buffer.from([FRAME_SEND_BATCH]), dst, Buffer.from([0x00, 0x01, 9, 0x00])]);
  t.same(decodeRelayFrame(halfHeader), { type: 'invalid', reason: 'bad-batch' }, 'a length header cut in half');
  const empty = Buffer.concat([Buffer.from([FRAME_SEND_BATCH]), dst]);
  t.same(decodeRelayFrame(empty), { type: 'send-batch', key: dst, body: new Uint8Array(0), count: 0 }, 'an empty batch is well formed');
});

t.test('decoding random bytes never throws', async (t) => {
  let n = 0;
  for (let i = 0; i < 20000; i++) {
    const b = rnd(Math.floor(Math.random() * 120));
    if (Math.random() < 0.7 && b.length) b[0] = 1 + Math.floor(Math.random() * 13);
    decodeRelayFrame(b);
    n++;
  }
  t.equal(n, 20000);
});

t.test('login proof: only the key holder, only for this challenge and server', async (t) => {
  const rng = (n: number) => rnd(n);
  const server = generatePrivateKey(rng);
  const client = generatePrivateKey(rng);
  const challenge = rnd(32);
  const nonce = rnd(24);
  const sealed = sealLoginProof(client, publicKeyOf(client), publicKeyOf(server), challenge, nonce)!;
  t.ok(verifyLoginProof(server, publicKeyOf(server), publicKeyOf(client), challenge, nonce, sealed), 'valid proof accepted');
  t.notOk(verifyLoginProof(server, publicKeyOf(server), publicKeyOf(client), rnd(32), nonce, sealed), 'replayed on another challenge: refused');
  const other = generatePrivateKey(rng);
  t.notOk(verifyLoginProof(server, publicKeyOf(server), publicKeyOf(other), challenge, nonce, sealed), 'claimed for another key: refused');
  const forged = sealLoginProof(other, publicKeyOf(client), publicKeyOf(server), challenge, nonce)!;
  t.notOk(verifyLoginProof(server, publicKeyOf(server), publicKeyOf(client), challenge, nonce, forged), 'made without the private key: refused');
  t.notOk(verifyLoginProof(server, publicKeyOf(server), new Uint8Array(32), challenge, nonce, sealed), 'low-order client key: refused');
});
