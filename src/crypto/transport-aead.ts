// The data-plane AEAD behind one interface, so the benchmark can pick a backend.
// Both backends produce identical bytes (RFC 8439 ChaCha20-Poly1305, WireGuard nonce).
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { AEAD_TAG_LEN } from './aead.js';

export interface TransportAead {
  readonly name: string;
  /** Seals src[srcOff, srcOff+len) into dst at dstOff; returns the bytes written (len + 16). */
  seal(key: Uint8Array, counter: number, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number;
  /** Opens ciphertext src[srcOff, srcOff+len) into dst at dstOff; returns the plaintext length, or -1 if it does not authenticate. */
  open(key: Uint8Array, counter: number, src: Uint8Array, srcOff: number, len: number, dst: Uint8Array, dstOff: number): number;
  /**
   * Batch sealing, where the backend has it (native): packets [start, start+count) of buf
   * (offsets/lengths) become transport messages in place (header before, padding to `mtu` and tag
   * after; counters counter, counter+1...); offsets/lengths then describe the messages. Returns
   * their total bytes, or -1 when a packet lacks its room (then nothing was sent-worthy).
   */
  sealBatch?(key: Uint8Array, receiver: number, counter: number, mtu: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, start: number, count: number): number;
  /**
   * Batch opening: messages [start, start+count) of buf, all for one session, opened in place
   * (plaintext at offset + 16). plain[i]: its length or -1 (does not authenticate); counters[i]:
   * the message counter (-1: too large, not opened).
   */
  openBatch?(key: Uint8Array, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, start: number, count: number, plain: Int32Array, counters: Float64Array): void;
}

const nonce = Buffer.alloc(12);
function setNonce(counter: number): Buffer {
  nonce.writeUInt32LE(counter >>> 0, 4);
  nonce.writeUInt32LE(Math.floor(counter / 0x1_0000_0000), 8);
  return nonce;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** OpenSSL through node:crypto: one cipher object per packet. */
export const nodeCryptoAead: TransportAead = {
  name: 'node-crypto',
  seal(key, counter, src, srcOff, len, dst, dstOff) {
    const c = createCipheriv('chacha20-poly1305', key, setNonce(counter), { authTagLength: AEAD_TAG_LEN });
    const out = asBuffer(dst);
    const ct = c.update(asBuffer(src).subarray(srcOff, srcOff + len));
    c.final();
    ct.copy(out, dstOff);
    c.getAuthTag().copy(out, dstOff + len);
    return len + AEAD_TAG_LEN;
  },
  open(key, counter, src, srcOff, len, dst, dstOff) {
    if (len < AEAD_TAG_LEN) return -1;
    const s = asBuffer(src);
    const ptLen = len - AEAD_TAG_LEN;
    const d = createDecipheriv('chacha20-poly1305', key, setNonce(counter), { authTagLength: AEAD_TAG_LEN });
    d.setAuthTag(s.subarray(srcOff + ptLen, srcOff + len));
    const pt = d.update(s.subarray(srcOff, srcOff + ptLen));
    try {
      d.final();
    } catch {
      return -1;
    }
    pt.copy(asBuffer(dst), dstOff);
    return ptLen;
  },
};

/** Pure JavaScript (noble): the fallback when OpenSSL lacks ChaCha20-Poly1305. */
export const nobleAead: TransportAead = {
  name: 'noble',
  seal(key, counter, src, srcOff, len, dst, dstOff) {
    const n = new Uint8Array(setNonce(counter));
    const ct = chacha20poly1305(key, n).encrypt(src.subarray(srcOff, srcOff + len));
    dst.set(ct, dstOff);
    return ct.length;
  },
  open(key, counter, src, srcOff, len, dst, dstOff) {
    if (len < AEAD_TAG_LEN) return -1;
    const n = new Uint8Array(setNonce(counter));
    try {
      const pt = chacha20poly1305(key, n).decrypt(src.subarray(srcOff, srcOff + len));
      dst.set(pt, dstOff);
      return pt.length;
    } catch {
      return -1;
    }
  },
};

/** True when this Node's OpenSSL offers ChaCha20-Poly1305 (it always does in Node 20's bundled build). */
function nodeCryptoHasChaCha(): boolean {
  try {
    createCipheriv('chacha20-poly1305', new Uint8Array(32), new Uint8Array(12), { authTagLength: AEAD_TAG_LEN });
    return true;
  } catch {
    return false;
  }
}

/**
 * The backend named (native, node-crypto, noble), or the fastest available:
 * native (the addon) → node-crypto → noble (pure JavaScript, always there).
 */
export function selectTransportAead(name: string | undefined, native: () => TransportAead | null): TransportAead {
  if (name === 'noble') return nobleAead;
  if (name === 'node-crypto') return nodeCryptoHasChaCha() ? nodeCryptoAead : nobleAead;
  const n = native();
  if (n) return n;
  return nodeCryptoHasChaCha() ? nodeCryptoAead : nobleAead;
}
