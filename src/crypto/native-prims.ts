// The addon's handshake primitives (native/src/noise-prims.h) and its boxes with associated data
// (aead.h), or null when the addon is not built or MESHD_NATIVE_PRIMS=off: blake2s.ts, x25519.ts
// and aead.ts fall back to node:crypto and noble then.
import { loadNative, type NativeAddon } from '../tun/native.js';

export type NativePrims = Pick<NativeAddon, 'blake2s' | 'hmacBlake2s' | 'kdf' | 'x25519' | 'x25519Public' | 'x25519Available' | 'aeadSealAd' | 'aeadOpenAd'>;

function load(): NativePrims | null {
  if (/^(off|0|false|no)$/i.test(process.env.MESHD_NATIVE_PRIMS ?? '')) return null;
  try {
    const addon = loadNative();
    return typeof addon.kdf === 'function' && typeof addon.aeadSealAd === 'function' ? addon : null;
  } catch {
    return null;
  }
}

export const nativePrims: NativePrims | null = load();
