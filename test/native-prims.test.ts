// The addon's handshake primitives (BLAKE2s, HMAC, KDF, X25519) against noble and node:crypto:
// the same bytes for every input, and the same refusals.
import t from 'tap';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { x25519 } from '@noble/curves/ed25519.js';
import { nativePrims } from '../src/crypto/native-prims.js';
import { dh, dhPublic } from '../src/crypto/x25519.js';
import { hash, hmacBlake2s, kdf1, kdf2, kdf3, mac } from '../src/crypto/blake2s.js';
import { toHex } from './helpers/vectors.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));

t.test('the primitives are native in this build', async (t) => {
  t.ok(nativePrims, 'the addon provides them');
  t.ok(nativePrims?.x25519Available(), "this node's OpenSSL X25519 core is found and passes RFC 7748 §6.1");
});

t.test('BLAKE2s, keyed BLAKE2s and HMAC match node:crypto and noble at every block boundary', async (t) => {
  const p = nativePrims!;
  for (const len of [0, 1, 31, 32, 33, 63, 64, 65, 127, 128, 129, 148, 1000]) {
    const data = rnd(len);
    const out = new Uint8Array(32);
    p.blake2s(out, null, data);
    t.equal(toHex(out), createHash('blake2s256').update(data).digest('hex'), `hash of ${len} bytes`);
    // Split into three parts: the same as one.
    const a = data.subarray(0, len >> 2);
    const b = data.subarray(len >> 2, len >> 1);
    const c = data.subarray(len >> 1);
    const parts = new Uint8Array(32);
    p.blake2s(parts, null, a, b, c);
    t.equal(toHex(parts), toHex(out), `hash of ${len} bytes in three parts`);
    for (const keyLen of [1, 16, 32]) {
      const key = rnd(keyLen);
      const m = new Uint8Array(16);
      p.blake2s(m, key, data);
      t.equal(toHex(m), toHex(blake2s(data, { key, dkLen: 16 })), `keyed (${keyLen}-byte key) MAC of ${len} bytes`);
    }
    const hk = rnd(32);
    const h = new Uint8Array(32);
    p.hmacBlake2s(h, hk, data);
    t.equal(toHex(h), createHmac('blake2s256', hk).update(data).digest('hex'), `HMAC of ${len} bytes`);
  }
  t.equal(p.blake2s(new Uint8Array(33), null, rnd(4)), false, 'a digest longer than 32 bytes is refused');
  t.equal(p.blake2s(new Uint8Array(16), rnd(33), rnd(4)), false, 'a key longer than 32 bytes is refused');
});

t.test('the KDF chain in one call is the whitepaper chain of HMACs', async (t) => {
  for (let i = 0; i < 20; i++) {
    const key = rnd(32);
    const input = rnd(i * 7);
    const hm = (k: Uint8Array, ...parts: Uint8Array[]) => {
      const h = createHmac('blake2s256', k);
      for (const x of parts) h.update(x);
      return new Uint8Array(h.digest());
    };
    const t0 = hm(key, input);
    const t1 = hm(t0, Uint8Array.of(1));
    const t2 = hm(t0, t1, Uint8Array.of(2));
    const t3 = hm(t0, t2, Uint8Array.of(3));
    t.equal(toHex(kdf1(key, input)), toHex(t1));
    t.same(kdf2(key, input).map(toHex), [t1, t2].map(toHex));
    t.same(kdf3(key, input).map(toHex), [t1, t2, t3].map(toHex));
  }
  t.equal(toHex(hash(rnd(0))), createHash('blake2s256').digest('hex'), 'HASH of nothing');
  t.equal(mac(rnd(32), rnd(10)).length, 16);
  t.equal(hmacBlake2s(rnd(32), rnd(5), rnd(6)).length, 32);
});

t.test('X25519 matches noble, and refuses low-order points', async (t) => {
  for (let i = 0; i < 30; i++) {
    const a = rnd(32);
    const b = rnd(32);
    t.equal(toHex(dhPublic(a)), toHex(x25519.getPublicKey(a)), 'public key');
    t.equal(toHex(dh(a, dhPublic(b))!), toHex(x25519.getSharedSecret(a, x25519.getPublicKey(b))), 'shared secret');
  }
  t.equal(dh(rnd(32), new Uint8Array(32)), null, 'the zero point gives null');
  const order8 = Uint8Array.from(Buffer.from('e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800', 'hex'));
  t.equal(dh(rnd(32), order8), null, 'a point of order 8 gives null');
});
