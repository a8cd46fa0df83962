// The crypto adapters against published vectors, and the two transport AEAD backends against each other.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { hash, kdf1, kdf2, kdf3, mac } from '../src/crypto/blake2s.js';
import { dh, dhPublic } from '../src/crypto/x25519.js';
import { counterNonce, openZero, sealZero, xopen, xseal } from '../src/crypto/aead.js';
import { nativePrims } from '../src/crypto/native-prims.js';
import { nobleAead, nodeCryptoAead, selectTransportAead } from '../src/crypto/transport-aead.js';
import { nativeAead } from '../src/crypto/native-aead.js';
import {
  constantTimeEqual,
  generatePrivateKey,
  keyToBase64,
  parsePrivateKey,
  parsePublicKey,
  publicKeyOf,
} from '../src/crypto/keys.js';
import { hex, loadVector, toHex } from './helpers/vectors.js';

t.test('X25519 matches RFC 7748', async (t) => {
  const v = loadVector<{
    scalarmult: { scalar: string; u: string; out: string }[];
    dh: Record<string, string>;
  }>('x25519.json');
  for (const c of v.scalarmult) t.equal(toHex(dh(hex(c.scalar), hex(c.u))!), c.out);
  t.equal(toHex(dhPublic(hex(v.dh.alicePrivate))), v.dh.alicePublic);
  t.equal(toHex(dhPublic(hex(v.dh.bobPrivate))), v.dh.bobPublic);
  t.equal(toHex(dh(hex(v.dh.alicePrivate), hex(v.dh.bobPublic))!), v.dh.shared);
  t.equal(toHex(dh(hex(v.dh.bobPrivate), hex(v.dh.alicePublic))!), v.dh.shared);
  t.equal(dh(hex(v.dh.alicePrivate), new Uint8Array(32)), null, 'a low-order (zero) point gives null');
});

t.test('BLAKE2s matches RFC 7693', async (t) => {
  for (const c of loadVector<{ input: string; hash: string }[]>('blake2s.json')) t.equal(toHex(hash(hex(c.input))), c.hash);
  t.equal(mac(new Uint8Array(32), new Uint8Array(0)).length, 16, 'MAC is 16 bytes');
});

t.test('KDF matches wireguard-go kdf_test.go', async (t) => {
  for (const c of loadVector<{ key: string; input: string; t0: string; t1: string; t2: string }[]>('kdf.json')) {
    const [a, b, d] = kdf3(hex(c.key), hex(c.input));
    t.same([toHex(a), toHex(b), toHex(d)], [c.t0, c.t1, c.t2]);
    const [e, f] = kdf2(hex(c.key), hex(c.input));
    t.same([toHex(e), toHex(f)], [c.t0, c.t1]);
    t.equal(toHex(kdf1(hex(c.key), hex(c.input))), c.t0);
  }
});

t.test('ChaCha20-Poly1305 matches RFC 8439 §2.8.2', async (t) => {
  const v = loadVector<Record<string, string>>('chacha20poly1305.json');
  const sealed = chacha20poly1305(hex(v.key), hex(v.nonce), hex(v.aad)).encrypt(hex(v.plaintext));
  t.equal(toHex(sealed), v.ciphertext + v.tag);
});

t.test('XChaCha20-Poly1305 matches draft-irtf-cfrg-xchacha-03 A.3.1', async (t) => {
  t.ok(nativePrims, 'the addon is built, so the boxes are its own');
  const v = loadVector<Record<string, string>>('xchacha20poly1305.json');
  const sealed = xseal(hex(v.key), hex(v.nonce), hex(v.plaintext), hex(v.aad));
  t.equal(toHex(sealed), v.ciphertext + v.tag);
  t.equal(toHex(xopen(hex(v.key), hex(v.nonce), sealed, hex(v.aad))!), v.plaintext);
  t.equal(xopen(hex(v.key), hex(v.nonce), sealed, hex(v.aad).subarray(1)), null, 'other associated data does not open');
  const nonce = hex(v.nonce);
  nonce[3] ^= 1;
  t.equal(xopen(hex(v.key), nonce, sealed, hex(v.aad)), null, 'a nonce that differs in its HChaCha20 part does not open');
});

t.test('boxes with associated data: the addon and noble agree byte for byte', async (t) => {
  t.ok(nativePrims, 'the addon is built');
  const zero = new Uint8Array(12);
  for (const len of [0, 1, 15, 16, 17, 32, 100, 1200]) {
    for (const adLen of [0, 1, 16, 32, 33]) {
      const key = new Uint8Array(randomBytes(32));
      const nonce = new Uint8Array(randomBytes(24));
      const pt = new Uint8Array(randomBytes(len));
      const ad = new Uint8Array(randomBytes(adLen));
      const ref = chacha20poly1305(key, zero, ad).encrypt(pt);
      const sealed = sealZero(key, pt, ad);
      t.equal(toHex(sealed), toHex(ref), `sealZero, ${len} bytes, ${adLen} of associated data`);
      t.equal(toHex(openZero(key, ref, ad)!), toHex(pt));
      const xref = xchacha20poly1305(key, nonce, ad).encrypt(pt);
      t.equal(toHex(xseal(key, nonce, pt, ad)), toHex(xref), `xseal, ${len} bytes, ${adLen} of associated data`);
      t.equal(toHex(xopen(key, nonce, xref, ad)!), toHex(pt));
      const bad = xref.slice();
      bad[len > 0 ? 0 : bad.length - 1] ^= 0x80;
      t.equal(xopen(key, nonce, bad, ad), null, 'a flipped bit does not open');
      t.equal(openZero(key, bad.subarray(0, ref.length), ad), null);
      const otherAd = new Uint8Array(adLen + 1);
      otherAd.set(ad);
      t.equal(openZero(key, ref, otherAd), null, 'longer associated data does not open');
    }
  }
  t.equal(openZero(new Uint8Array(32), new Uint8Array(15), new Uint8Array(0)), null, 'shorter than a tag');
  t.equal(xopen(new Uint8Array(32), new Uint8Array(24), new Uint8Array(0), new Uint8Array(0)), null);
  t.throws(() => sealZero(new Uint8Array(31), new Uint8Array(1), new Uint8Array(0)), 'a short key is refused');
});

t.test('transport AEAD backends agree byte for byte and reject tampering', async (t) => {
  const native = nativeAead();
  t.ok(native, 'the native backend loads (the addon is built)');
  const backends = [nodeCryptoAead, nobleAead, ...(native ? [native] : [])];
  const key = new Uint8Array(randomBytes(32));
  for (const len of [0, 1, 15, 16, 17, 1280, 1420]) {
    for (const counter of [0, 1, 0xffff_ffff, 2 ** 40 + 7]) {
      const pt = new Uint8Array(randomBytes(len));
      const a = new Uint8Array(len + 16);
      const b = new Uint8Array(len + 16);
      t.equal(nodeCryptoAead.seal(key, counter, pt, 0, len, a, 0), len + 16);
      t.equal(nobleAead.seal(key, counter, pt, 0, len, b, 0), len + 16);
      t.equal(toHex(a), toHex(b), `len ${len} counter ${counter}`);
      const ref = chacha20poly1305(key, counterNonce(counter)).encrypt(pt);
      t.equal(toHex(a), toHex(ref), 'matches noble with the WireGuard nonce');
      if (native) {
        const c = new Uint8Array(len + 16);
        c.set(pt);
        t.equal(native.seal(key, counter, c, 0, len, c, 0), len + 16);
        t.equal(toHex(c), toHex(a), `native seals the same bytes in place (len ${len})`);
      }
      for (const aead of backends) {
        const out = new Uint8Array(len);
        t.equal(aead.open(key, counter, a, 0, len + 16, out, 0), len);
        t.equal(toHex(out), toHex(pt));
        const bad = a.slice();
        bad[bad.length - 1] ^= 1;
        t.equal(aead.open(key, counter, bad, 0, len + 16, out, 0), -1, `${aead.name} rejects a flipped tag`);
        t.equal(aead.open(key, counter + 1, a, 0, len + 16, out, 0), -1, `${aead.name} rejects a wrong counter`);
      }
    }
  }
});

t.test('keys round-trip through base64 like wg(8)', async (t) => {
  const priv = generatePrivateKey((n) => new Uint8Array(randomBytes(n)));
  t.equal(priv[0] & 7, 0, 'clamped low bits');
  t.equal(priv[31] & 0xc0, 0x40, 'clamped high bits');
  const b64 = keyToBase64(priv);
  t.equal(b64.length, 44);
  t.ok(constantTimeEqual(parsePrivateKey(b64), priv));
  t.ok(constantTimeEqual(parsePublicKey(keyToBase64(publicKeyOf(priv))), publicKeyOf(priv)));
  t.throws(() => parsePublicKey('not a key'), { code: 'EKEYFORMAT' });
  t.throws(() => parsePublicKey(b64.slice(0, 43)), { code: 'EKEYFORMAT' });
  // An unclamped private key is accepted and clamped, as wg(8) does.
  const raw = new Uint8Array(32).fill(0xff);
  const p = parsePrivateKey(Buffer.from(raw).toString('base64'));
  t.equal(p[0], 0xf8);
  t.equal(p[31], 0x7f);
  t.notOk(constantTimeEqual(new Uint8Array(32), new Uint8Array(31)), 'different lengths are unequal');
});

t.test('backend selection: native first, then node:crypto, then noble', async (t) => {
  t.equal(selectTransportAead(undefined, () => null).name, 'node-crypto', 'without the addon: OpenSSL through node:crypto');
  t.equal(selectTransportAead('noble', nativeAead).name, 'noble', 'forced pure JavaScript');
  t.equal(selectTransportAead(undefined, nativeAead).name, nativeAead() ? 'native' : 'node-crypto');
});
