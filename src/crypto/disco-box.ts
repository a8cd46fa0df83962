// Seals disco messages between two node keys:
//   key = HASH("meshd disco v1" || X25519(own, peer))   (the same key both ways)
//   box = XChaCha20-Poly1305(key, random 24-byte nonce, message, ad = sender public key)
import { hash } from './blake2s.js';
import { xopen, xseal } from './aead.js';
import { dh } from './x25519.js';

const LABEL = new TextEncoder().encode('meshd disco v1');

/** The shared disco key with a peer, or null if the peer's key is unusable (low order). */
export function discoKey(ownPriv: Uint8Array, peerPub: Uint8Array): Uint8Array | null {
  const s = dh(ownPriv, peerPub);
  return s ? hash(LABEL, s) : null;
}

export function sealDisco(key: Uint8Array, nonce: Uint8Array, message: Uint8Array, senderPub: Uint8Array): Uint8Array {
  return xseal(key, nonce, message, senderPub);
}

export function openDisco(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, senderPub: Uint8Array): Uint8Array | null {
  return xopen(key, nonce, sealed, senderPub);
}
