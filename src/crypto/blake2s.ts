// WireGuard's hash primitives: HASH, MAC, HMAC and the HKDF-style KDF over BLAKE2s (whitepaper §5.4).
// The addon's BLAKE2s when it is built (one call per HASH, MAC or whole KDF: 1.8 µs an HMAC against
// 8.7 µs through node:crypto's objects here); else OpenSSL's BLAKE2s-256 through node:crypto for
// HASH and HMAC, and noble for keyed BLAKE2s (MAC), which node:crypto does not expose.
import { createHash, createHmac, getHashes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { nativePrims } from './native-prims.js';

const OPENSSL_BLAKE2S = getHashes().includes('blake2s256');

export const HASH_LEN = 32;
export const MAC_LEN = 16;

/** HASH(input): BLAKE2s with a 32-byte digest over the concatenation of the parts. */
export function hash(...parts: Uint8Array[]): Uint8Array {
  if (nativePrims && parts.length <= 3) {
    const out = new Uint8Array(HASH_LEN);
    nativePrims.blake2s(out, null, parts[0] ?? EMPTY, parts[1], parts[2]);
    return out;
  }
  if (OPENSSL_BLAKE2S) {
    const h = createHash('blake2s256');
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  }
  const h = blake2s.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

/** MAC(key, input): keyed BLAKE2s with a 16-byte digest. */
export function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  if (nativePrims && key.length <= 32) {
    const out = new Uint8Array(MAC_LEN);
    nativePrims.blake2s(out, key, input);
    return out;
  }
  return blake2s(input, { key, dkLen: MAC_LEN });
}

/** HMAC(key, input) with BLAKE2s. */
export function hmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  if (nativePrims && parts.length <= 3 && key.length <= 64) {
    const out = new Uint8Array(HASH_LEN);
    nativePrims.hmacBlake2s(out, key, parts[0] ?? EMPTY, parts[1], parts[2]);
    return out;
  }
  if (OPENSSL_BLAKE2S) {
    const h = createHmac('blake2s256', key);
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  }
  const h = hmac.create(blake2s, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const EMPTY = new Uint8Array(0);
const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** KDF_n(key, input) for n = 1, 2, 3 (whitepaper §5.4). */
/** KDF_n in one native call: T1..Tn, each its own array (the scratch is wiped). */
function nativeKdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] | null {
  if (!nativePrims || key.length !== 32) return null;
  const out = new Uint8Array(32 * n);
  nativePrims.kdf(n, key, input, out);
  const ts = [out.slice(0, 32)];
  if (n > 1) ts.push(out.slice(32, 64));
  if (n > 2) ts.push(out.slice(64, 96));
  out.fill(0);
  return ts;
}

export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  const fast = nativeKdf(1, key, input);
  if (fast) return fast[0];
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, ONE);
  t0.fill(0);
  return t1;
}

export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const fast = nativeKdf(2, key, input);
  if (fast) return [fast[0], fast[1]];
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, ONE);
  const t2 = hmacBlake2s(t0, t1, TWO);
  t0.fill(0);
  return [t1, t2];
}

export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const fast = nativeKdf(3, key, input);
  if (fast) return [fast[0], fast[1], fast[2]];
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, ONE);
  const t2 = hmacBlake2s(t0, t1, TWO);
  const t3 = hmacBlake2s(t0, t2, THREE);
  t0.fill(0);
  return [t1, t2, t3];
}
