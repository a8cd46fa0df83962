// X25519 Diffie-Hellman for the handshake; a low-order peer key yields null, never a throw.
// OpenSSL through node:crypto is ~20× faster than pure JS here; noble is the fallback.
import { createPrivateKey, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { isAllZero } from './keys.js';
import { nativePrims } from './native-prims.js';

// DER wrapper for a raw 32-byte X25519 private key (RFC 8410 PKCS#8), the slow fallback import.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');

// Importing a key into OpenSSL costs more than the DH itself: keep the KeyObject of each key array
// (the static keys are the same arrays for every handshake; an ephemeral one is used two or three
// times). Keyed by the array object, so entries go when the key does.
const privateCache = new WeakMap<Uint8Array, KeyObject>();
const publicCache = new WeakMap<Uint8Array, KeyObject>();

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');
const ZERO_X = b64u(new Uint8Array(32));

/**
 * Imports a raw private key. OpenSSL 3's PKCS#8 decoder takes ~0.5 ms; Node's JWK import takes
 * ~1 µs and builds the key from `d` alone (`x` must be present but is not used). Whether that still
 * holds is checked once, below, against noble; if not, PKCS#8 it is.
 */
let jwkPrivateImport = true;
function importPrivate(priv: Uint8Array): KeyObject {
  if (jwkPrivateImport) {
    try {
      return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(priv), x: ZERO_X }, format: 'jwk' });
    } catch {
      jwkPrivateImport = false;
    }
  }
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, priv]), format: 'der', type: 'pkcs8' });
}

function privateKeyObject(priv: Uint8Array): KeyObject {
  let k = privateCache.get(priv);
  if (!k) {
    k = importPrivate(priv);
    privateCache.set(priv, k);
  }
  return k;
}

function publicKeyObject(pub: Uint8Array): KeyObject {
  let k = publicCache.get(pub);
  if (!k) {
    k = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pub) }, format: 'jwk' });
    publicCache.set(pub, k);
  }
  return k;
}

let useOpenSsl = true;
try {
  const probe = new Uint8Array(32).fill(9);
  const viaJwk = Buffer.from(createPublicKey(importPrivate(probe)).export({ format: 'jwk' }).x as string, 'base64url');
  if (!viaJwk.equals(Buffer.from(x25519.getPublicKey(probe)))) jwkPrivateImport = false;
  diffieHellman({ privateKey: importPrivate(probe), publicKey: publicKeyObject(x25519.getPublicKey(new Uint8Array(32).fill(7))) });
} catch {
  useOpenSsl = false;
}

/** The addon's X25519 (OpenSSL's own core, no KeyObjects: 64 µs a DH here against 79 + 27 for an import). */
const native = nativePrims?.x25519Available() ? nativePrims : null;

/** DH(priv, pub). Returns null when the result is all zeros (low-order point), which WireGuard rejects. */
export function dh(priv: Uint8Array, pub: Uint8Array): Uint8Array | null {
  if (native && priv.length === 32 && pub.length === 32) {
    const shared = new Uint8Array(32);
    return native.x25519(shared, priv, pub) === 1 ? shared : null;
  }
  let out: Uint8Array;
  try {
    out = useOpenSsl
      ? new Uint8Array(diffieHellman({ privateKey: privateKeyObject(priv), publicKey: publicKeyObject(pub) }))
      : x25519.getSharedSecret(priv, pub);
  } catch {
    return null; // OpenSSL and noble both refuse low-order points
  }
  return isAllZero(out) ? null : out;
}

export function dhPublic(priv: Uint8Array): Uint8Array {
  if (native && priv.length === 32) {
    const pub = new Uint8Array(32);
    native.x25519Public(pub, priv);
    return pub;
  }
  if (!useOpenSsl) return x25519.getPublicKey(priv);
  return new Uint8Array(Buffer.from(createPublicKey(privateKeyObject(priv)).export({ format: 'jwk' }).x as string, 'base64url'));
}
