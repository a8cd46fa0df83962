// Branded X25519 key types, base64 in the wg(8) format, and constant-time comparison.
import { x25519 } from '@noble/curves/ed25519.js';

export const KEY_LEN = 32;

declare const publicBrand: unique symbol;
declare const privateBrand: unique symbol;
declare const pskBrand: unique symbol;

/** A node's X25519 public key (32 bytes). */
export type NodePublicKey = Uint8Array & { readonly [publicBrand]: true };
/** A node's clamped X25519 private key (32 bytes). Never log it. */
export type NodePrivateKey = Uint8Array & { readonly [privateBrand]: true };
/** A 32-byte pre-shared symmetric key. */
export type PresharedKey = Uint8Array & { readonly [pskBrand]: true };

export class KeyFormatError extends Error {
  readonly code = 'EKEYFORMAT';
}

/** Clamps a 32-byte scalar in place, as `wg genkey` does (RFC 7748 §5). */
export function clamp(k: Uint8Array): Uint8Array {
  k[0] &= 248;
  k[31] = (k[31] & 127) | 64;
  return k;
}

export function generatePrivateKey(rng: (n: number) => Uint8Array): NodePrivateKey {
  return clamp(rng(KEY_LEN)) as NodePrivateKey;
}

export function generatePresharedKey(rng: (n: number) => Uint8Array): PresharedKey {
  return rng(KEY_LEN) as PresharedKey;
}

export function publicKeyOf(priv: NodePrivateKey): NodePublicKey {
  return x25519.getPublicKey(priv) as NodePublicKey;
}

/** Encodes a key as wg(8) does: standard base64 with padding, 44 characters. */
export function keyToBase64(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('base64');
}

const B64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

function decodeKey(s: string, what: string): Uint8Array {
  const t = s.trim();
  if (!B64_KEY.test(t)) throw new KeyFormatError(`${what} is not a base64 32-byte key`);
  return new Uint8Array(Buffer.from(t, 'base64'));
}

export function parsePublicKey(s: string): NodePublicKey {
  return decodeKey(s, 'public key') as NodePublicKey;
}

/** Parses a private key and clamps it (wg(8) accepts unclamped keys and clamps them). */
export function parsePrivateKey(s: string): NodePrivateKey {
  return clamp(decodeKey(s, 'private key')) as NodePrivateKey;
}

export function parsePresharedKey(s: string): PresharedKey {
  return decodeKey(s, 'preshared key') as PresharedKey;
}

/** Constant-time equality of two byte strings of the same length. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function isAllZero(a: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < a.length; i++) acc |= a[i];
  return acc === 0;
}

/** A key's map key: hex is cheap and unambiguous. */
export function keyId(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('hex');
}
