// ChaCha20-Poly1305 (RFC 8439) with WireGuard's nonce (4 zero bytes + 64-bit LE counter),
// and XChaCha20-Poly1305 for cookie replies. Handshake-sized messages use noble.
import { chacha20poly1305, xchacha20poly1305 } from '@noble/ciphers/chacha.js';

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

/** AEAD(key, 0, plaintext, ad) as used by the handshake (counter always 0). */
export function sealZero(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  return chacha20poly1305(key, ZERO_NONCE, ad).encrypt(plaintext);
}

/** Opens AEAD(key, 0, ·, ad); null when authentication fails. */
export function openZero(key: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (ciphertext.length < AEAD_TAG_LEN) return null;
  try {
    return chacha20poly1305(key, ZERO_NONCE, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

export function xseal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, ad).encrypt(plaintext);
}

export function xopen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, ad: Uint8Array): Uint8Array | null {
  if (ciphertext.length < AEAD_TAG_LEN) return null;
  try {
    return xchacha20poly1305(key, nonce, ad).decrypt(ciphertext);
  } catch {
    return null;
  }
}
