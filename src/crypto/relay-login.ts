// The relay login proof: the client shows it holds the private key of the public key it claims,
// bound to this connection's fresh challenge and to the server's key.
//   key    = HASH("meshd relay login v1" || DH(client, server) || challenge || server pub || client pub)
//   sealed = XChaCha20-Poly1305(key, nonce, plaintext = challenge, ad = client pub)
import { hash } from './blake2s.js';
import { xopen, xseal } from './aead.js';
import { dh } from './x25519.js';
import { constantTimeEqual } from './keys.js';

const LABEL = new TextEncoder().encode('meshd relay login v1');

function proofKey(shared: Uint8Array, challenge: Uint8Array, serverPub: Uint8Array, clientPub: Uint8Array): Uint8Array {
  return hash(LABEL, shared, challenge, serverPub, clientPub);
}

export function sealLoginProof(
  clientPriv: Uint8Array,
  clientPub: Uint8Array,
  serverPub: Uint8Array,
  challenge: Uint8Array,
  nonce: Uint8Array,
): Uint8Array | null {
  const shared = dh(clientPriv, serverPub);
  if (!shared) return null;
  return xseal(proofKey(shared, challenge, serverPub, clientPub), nonce, challenge, clientPub);
}

export function verifyLoginProof(
  serverPriv: Uint8Array,
  serverPub: Uint8Array,
  clientPub: Uint8Array,
  challenge: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
): boolean {
  const shared = dh(serverPriv, clientPub);
  if (!shared) return false;
  const opened = xopen(proofKey(shared, challenge, serverPub, clientPub), nonce, sealed, clientPub);
  return opened !== null && constantTimeEqual(opened, challenge);
}
