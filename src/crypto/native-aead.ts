// The addon's AEAD (Node's own OpenSSL: its ChaCha20/Poly1305 cores, else one reused EVP context),
// per packet or a batch at a time: no cipher objects per packet.
import { loadNative } from '../tun/native.js';
import type { TransportAead } from './transport-aead.js';

/** Most threads a batch's AEAD may run on (the addon's pool: the caller and seven helpers). */
export const MAX_AEAD_THREADS = 8;

/**
 * The native backend, or null when the addon is not built or lacks AEAD support. `threads` > 1
 * spreads each batch's seal and open over that many threads, the caller included (the addon's
 * aead-pool.h; MESHD_AEAD_THREADS): the name says how many are in effect.
 */
export function nativeAead(threads = 1): TransportAead | null {
  let addon: ReturnType<typeof loadNative>;
  try {
    addon = loadNative();
  } catch {
    return null;
  }
  if (typeof addon.aeadSeal !== 'function') return null;
  const running = addon.setAeadThreads(threads);
  return {
    name: running > 1 ? `native (${running} threads)` : 'native',
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
