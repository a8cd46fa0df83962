// Key pairs for lab configs.
import { randomBytes } from 'node:crypto';
import { generatePrivateKey, keyToBase64, publicKeyOf } from '../../src/crypto/keys.js';

export interface KeyPair {
  priv: string;
  pub: string;
}

export function keyPair(): KeyPair {
  const k = generatePrivateKey((n) => new Uint8Array(randomBytes(n)));
  return { priv: keyToBase64(k), pub: keyToBase64(publicKeyOf(k)) };
}
