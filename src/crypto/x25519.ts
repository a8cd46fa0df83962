// X25519 Diffie-Hellman for the handshake; a low-order peer key yields null, never a throw.
import { x25519 } from '@noble/curves/ed25519.js';
import { isAllZero } from './keys.js';

/** DH(priv, pub). Returns null when the result is all zeros (low-order point), which WireGuard rejects. */
export function dh(priv: Uint8Array, pub: Uint8Array): Uint8Array | null {
  let out: Uint8Array;
  try {
    out = x25519.getSharedSecret(priv, pub);
  } catch {
    return null;
  }
  return isAllZero(out) ? null : out;
}

export function dhPublic(priv: Uint8Array): Uint8Array {
  return x25519.getPublicKey(priv);
}
