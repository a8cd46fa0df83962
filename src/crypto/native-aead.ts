// The addon's AEAD (Node's own OpenSSL, one reused EVP context): no cipher objects per packet.
import { loadNative } from '../tun/native.js';
import type { TransportAead } from './transport-aead.js';

/** The native backend, or null when the addon is not built or lacks AEAD support. */
export function nativeAead(): TransportAead | null {
  let addon: ReturnType<typeof loadNative>;
  try {
    addon = loadNative();
  } catch {
    return null;
  }
  if (typeof addon.aeadSeal !== 'function') return null;
  return {
    name: 'native',
    seal(key, counter, src, srcOff, len, dst, dstOff) {
      if (src !== dst || srcOff !== dstOff) dst.set(src.subarray(srcOff, srcOff + len), dstOff);
      return addon.aeadSeal(key, counter >>> 0, Math.floor(counter / 0x1_0000_0000), dst, dstOff, len);
    },
    open(key, counter, src, srcOff, len, dst, dstOff) {
      return addon.aeadOpen(key, counter >>> 0, Math.floor(counter / 0x1_0000_0000), src, srcOff, len, dst, dstOff);
    },
  };
}
