// ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce (4 zero bytes + 64-bit LE counter), and
// XChaCha20-Poly1305 for cookie replies, disco and the relay login: the boxes with associated data.
// The addon's (one call, OpenSSL's cores and HChaCha20 in C: a few µs even when the caches are cold)
// when it is built; else noble's, which costs 0.1–0.4 ms per box on a box that runs every few seconds.
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { nativePrims } from './native-prims.js';

export const AEAD_TAG_LEN = 16;

/** WireGuard's 12-byte nonce for counter n (n < 2^53 here). */
export function counterNonce(n: number): Uint8Array {
  const nonce = new Uint8Array(12);
  const dv = new DataView(nonce.buffer);
  dv.setUint32(4, n >>> 0, true);
  dv.setUint32(8, Math.floor(n / 0x1_0000_0000), true);
  return nonce;
}

const ZERO_NONCE = new Uint8Array(12);
/** Counter 0 as the addon takes it (the 8 bytes after the 4 zero bytes). */
const ZERO_COUNTER = new Uint8Array(8);

/** AEAD(key, 0, plaintext, ad) as used by the handshake (counter always 0). */
export function sealZero(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  if (nativePrims) return nativeSeal(key, ZERO_COUNTER, plaintext, ad);
  return chacha20poly1305(key, ZERO_NONCE, ad).encrypt(plaintext);
}

/** Opens AEAD(key, 0, ·, ad); null when authentication fails. */
export function openZero(key: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (ciphertext.length < AEAD_TAG_LEN) return null;
  if (nativePrims) return nativeOpen(key, ZERO_COUNTER, ciphertext, ad);
  try {
    return chacha20poly1305(key, ZERO_NONCE, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

/** XChaCha20-Poly1305 with a 24-byte nonce. */
export function xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  if (nativePrims && key.length === 32 && nonce.length === 24) return nativeSeal(key, nonce, plaintext, ad);
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

export function xopen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (ciphertext.length < AEAD_TAG_LEN) return null;
  if (nativePrims && key.length === 32 && nonce.length === 24) return nativeOpen(key, nonce, ciphertext, ad);
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

function nativeSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  const out = new Uint8Array(plaintext.length + AEAD_TAG_LEN);
  if (nativePrims!.aeadSealAd(key, nonce, ad, plaintext, out) !== out.length) throw new RangeError('AEAD seal: key must be 32 bytes');
  return out;
}

function nativeOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(ciphertext.length - AEAD_TAG_LEN);
  return nativePrims!.aeadOpenAd(key, nonce, ad, ciphertext, out) === out.length ? out : null;
}
