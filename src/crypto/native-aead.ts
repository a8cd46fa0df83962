// The addon's AEAD (Node's own OpenSSL: its ChaCha20/Poly1305 cores, else one reused EVP context),
// per packet or a batch at a time: no cipher objects per packet.
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
    sealBatch(key, receiver, counter, mtu, buf, offsets, lengths, start, count) {
      return addon.sealBatch(key, receiver, counter >>> 0, Math.floor(counter / 0x1_0000_0000), mtu, buf, offsets, lengths, start, count);
    },
    openBatch(key, buf, offsets, lengths, start, count, plain, counters) {
      addon.openBatch(key, buf, offsets, lengths, start, count, plain, counters);
    },
  };
}
