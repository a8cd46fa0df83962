// Relay frames and the login proof: round trips, tolerance of trailing bytes, no throws on junk.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import {
  decodeRelayFrame,
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
  t.same(decodeRelayFrame(encodeClientLogin(k, n, s)), { type: 'client-login', clientKey: k, nonce: n, sealed: s });
  t.same(decodeRelayFrame(encodeServerWelcome(30000, 65536)), { type: 'server-welcome', keepaliveMs: 30000, maxFrameBytes: 65536 });
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

t.test('decoding random bytes never throws', async (t) => {
  let n = 0;
  for (let i = 0; i < 20000; i++) {
    const b = rnd(Math.floor(Math.random() * 120));
    if (Math.random() < 0.7 && b.length) b[0] = 1 + Math.floor(Math.random() * 10);
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
