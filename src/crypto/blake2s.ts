// WireGuard's hash primitives: HASH, MAC, HMAC and the HKDF-style KDF over BLAKE2s (whitepaper §5.4).
// HASH and HMAC use OpenSSL's BLAKE2s-256 through node:crypto when it has it (several times faster
// than JS for these short inputs); keyed BLAKE2s (MAC) is not exposed by node:crypto, so noble does it.
import { createHash, createHmac, getHashes } from 'node:crypto';
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';

const OPENSSL_BLAKE2S = getHashes().includes('blake2s256');

export const HASH_LEN = 32;
export const MAC_LEN = 16;

/** HASH(input): BLAKE2s with a 32-byte digest over the concatenation of the parts. */
export function hash(...parts: Uint8Array[]): Uint8Array {
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
  return blake2s(input, { key, dkLen: MAC_LEN });
}

/** HMAC(key, input) with BLAKE2s. */
export function hmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  if (OPENSSL_BLAKE2S) {
    const h = createHmac('blake2s256', key);
    for (const p of parts) h.update(p);
    return new Uint8Array(h.digest());
  }
  const h = hmac.create(blake2s, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/** KDF_n(key, input) for n = 1, 2, 3 (whitepaper §5.4). */
export function kdf1(key: Uint8Array, input: Uint8Array): Uint8Array {
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, ONE);
  t0.fill(0);
  return t1;
}

export function kdf2(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array] {
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, ONE);
  const t2 = hmacBlake2s(t0, t1, TWO);
  t0.fill(0);
  return [t1, t2];
}

export function kdf3(key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array] {
  const t0 = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(t0, ONE);
  const t2 = hmacBlake2s(t0, t1, TWO);
  const t3 = hmacBlake2s(t0, t2, THREE);
  t0.fill(0);
  return [t1, t2, t3];
}
