// The addon's AEAD (Node's own OpenSSL: its ChaCha20/Poly1305 cores, else one reused EVP context),
// per packet or a batch at a time: no cipher objects per packet.
import { loadNative } from '../tun/native.js';
import type { TransportAead } from './transport-aead.js';

/**
 * The arrays the addon has bound for batch seal and open (native/src/bound.h): one set each per
 * process, bound again when a call brings others. A daemon's batches always come in its TUN
 * reader's and UDP reader's arrays, so those are bound once; on a cold cache each typed array an
 * N-API call takes costs about a microsecond, which sparse traffic pays on every packet.
 */
interface SealArrays {
  buf: Uint8Array | null;
  offsets: Int32Array | null;
  lengths: Int32Array | null;
  readonly params: Float64Array;
}
interface OpenArrays extends SealArrays {
  plain: Int32Array | null;
  counters: Float64Array | null;
}
const sealArrays: SealArrays = { buf: null, offsets: null, lengths: null, params: new Float64Array(6) };
const openArrays: OpenArrays = { buf: null, offsets: null, lengths: null, plain: null, counters: null, params: new Float64Array(2) };

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
      const b = sealArrays;
      if (b.buf !== buf || b.offsets !== offsets || b.lengths !== lengths) {
        b.buf = null; // a refused bind leaves nothing bound (the addon's sealBound then refuses too)
        if (addon.aeadBindSeal(buf, offsets, lengths, b.params) !== 0) throw new TypeError('sealBatch: cannot bind its arrays');
        b.buf = buf;
        b.offsets = offsets;
        b.lengths = lengths;
      }
      const p = b.params;
      p[0] = receiver;
      p[1] = counter >>> 0;
      p[2] = Math.floor(counter / 0x1_0000_0000);
      p[3] = mtu;
      p[4] = start;
      p[5] = count;
      return addon.sealBound(key);
    },
    openBatch(key, buf, offsets, lengths, start, count, plain, counters) {
      const b = openArrays;
      if (b.buf !== buf || b.offsets !== offsets || b.lengths !== lengths || b.plain !== plain || b.counters !== counters) {
        b.buf = null;
        if (addon.aeadBindOpen(buf, offsets, lengths, plain, counters, b.params) !== 0) throw new TypeError('openBatch: cannot bind its arrays');
        b.buf = buf;
        b.offsets = offsets;
        b.lengths = lengths;
        b.plain = plain;
        b.counters = counters;
      }
      b.params[0] = start;
      b.params[1] = count;
      // Refused (a range past the arrays): none of them opened, whatever the arrays held before.
      if (addon.openBound(key) < 0) plain.fill(-1, start, start + count);
    },
  };
}
