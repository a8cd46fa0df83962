// Ed25519 for the mesh key (DESIGN.md §9): the admin host signs rosters, every member verifies them.
// node:crypto (OpenSSL) rather than noble: a 10,000-member roster is ~2 MB, and hashing that in
// JavaScript costs ~45 ms per verification against ~3 ms natively. Raw 32-byte keys go in and out
// through JWK. Bad keys or signatures give false / null, never a throw.
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';

export const ED25519_KEY_LEN = 32;
export const ED25519_SIGNATURE_LEN = 64;

declare const meshPublicBrand: unique symbol;
declare const meshPrivateBrand: unique symbol;

/** A mesh's Ed25519 public key: it names the mesh and is every member's trust root (`MeshKey =`). */
export type MeshPublicKey = Uint8Array & { readonly [meshPublicBrand]: true };
/** The mesh's Ed25519 private key (the admin key). Never log it; kept 0600 beside the config. */
export type MeshPrivateKey = Uint8Array & { readonly [meshPrivateBrand]: true };

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

/** A fresh key pair from `rng` (32 random bytes are an Ed25519 seed). */
export function generateMeshKey(rng: (n: number) => Uint8Array): { privateKey: MeshPrivateKey; publicKey: MeshPublicKey } {
  const privateKey = rng(ED25519_KEY_LEN) as MeshPrivateKey;
  return { privateKey, publicKey: meshPublicKeyOf(privateKey) };
}

export function meshPublicKeyOf(priv: MeshPrivateKey): MeshPublicKey {
  const jwk = createPublicKey(privateObject(priv)).export({ format: 'jwk' });
  return new Uint8Array(Buffer.from(jwk.x as string, 'base64url')) as MeshPublicKey;
}

function privateObject(priv: MeshPrivateKey): KeyObject {
  // OpenSSL derives the public half from `d`; `x` must be present in the JWK but is not used.
  return createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64u(priv), x: b64u(new Uint8Array(32)) }, format: 'jwk' });
}

const publicCache = new WeakMap<Uint8Array, KeyObject | null>();

function publicObject(pub: Uint8Array): KeyObject | null {
  let k = publicCache.get(pub);
  if (k === undefined) {
    try {
      k = pub.length === ED25519_KEY_LEN ? createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64u(pub) }, format: 'jwk' }) : null;
    } catch {
      k = null;
    }
    publicCache.set(pub, k);
  }
  return k;
}

export function signEd25519(priv: MeshPrivateKey, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, privateObject(priv)));
}

export function verifyEd25519(pub: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ED25519_SIGNATURE_LEN) return false;
  const k = publicObject(pub);
  if (!k) return false;
  try {
    return verify(null, message, k, signature);
  } catch {
    return false;
  }
}

/** A base64 mesh public key (`MeshKey =`, `--mesh-key`), or null. */
export function parseMeshPublicKey(s: string): MeshPublicKey | null {
  const t = s.trim();
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(t)) return null;
  const b = new Uint8Array(Buffer.from(t, 'base64'));
  return b.length === ED25519_KEY_LEN && publicObject(b) ? (b as MeshPublicKey) : null;
}

/** A base64 mesh private key (the admin key file), or null. */
export function parseMeshPrivateKey(s: string): MeshPrivateKey | null {
  const t = s.trim();
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(t)) return null;
  const b = new Uint8Array(Buffer.from(t, 'base64'));
  return b.length === ED25519_KEY_LEN ? (b as MeshPrivateKey) : null;
}

export const meshKeyToBase64 = (k: Uint8Array): string => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('base64');
