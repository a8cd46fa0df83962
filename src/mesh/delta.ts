// A roster change as a line delta against the roster a host already holds (DESIGN.md §9): a
// 10,000-member roster is ~2.4 MB, and pushing that to 10,000 subscribers is 24 GB per change;
// the change itself is a few lines (encodeRosterDoc puts one member per line and the serial last).
// The receiver rebuilds the exact signed bytes and checks them like any roster: a delta proves
// nothing by itself, and a wrong one is simply a roster that fails its check. Pure.
//
// Delta (big-endian):
//   0     4   magic "MSHD"
//   4     8   base serial (the roster it applies to)
//   12    4   base document length (a cheap guard against applying it to other bytes)
//   16    …   ops: 0x01 copy | start line u32 | count u32   (lines of the base document)
//                  0x02 insert | length u32 | bytes          (new lines, "\n"-separated, no final "\n")
//                  0x00 end
//   …     64  the new roster's signature
import { ROSTER_FORMAT_VERSION, ROSTER_HEADER_LEN, ROSTER_MAGIC } from './roster.js';
import { ED25519_SIGNATURE_LEN } from '../crypto/ed25519.js';

export const DELTA_MAGIC = Uint8Array.from([0x4d, 0x53, 0x48, 0x44]); // "MSHD"
const OP_END = 0;
const OP_COPY = 1;
const OP_INSERT = 2;
const NL = 0x0a;

/** Byte offsets of the lines of a document: line i is doc[starts[i], ends[i]). */
function lines(doc: Uint8Array): { starts: number[]; ends: number[] } {
  const starts = [0];
  const ends: number[] = [];
  for (let i = 0; i < doc.length; i++) {
    if (doc[i] === NL) {
      ends.push(i);
      starts.push(i + 1);
    }
  }
  ends.push(doc.length);
  return { starts, ends };
}

function docOf(signed: Uint8Array): Uint8Array {
  return signed.subarray(ROSTER_HEADER_LEN, signed.length - ED25519_SIGNATURE_LEN);
}

/** The delta that turns signed roster `base` (serial `baseSerial`) into signed roster `next`. */
export function makeDelta(base: Uint8Array, baseSerial: number, next: Uint8Array): Uint8Array {
  const a = docOf(base);
  const b = docOf(next);
  const la = lines(a);
  const lb = lines(b);
  const dec = new TextDecoder();
  const lineA = (i: number) => dec.decode(a.subarray(la.starts[i], la.ends[i]));
  const index = new Map<string, number>();
  for (let i = la.starts.length - 1; i >= 0; i--) index.set(lineA(i), i);
  const out: number[] = [];
  const chunks: Uint8Array[] = [];
  const u32 = (n: number) => out.push((n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
  const flushOut = () => {
    if (out.length) chunks.push(Uint8Array.from(out));
    out.length = 0;
  };
  let copyStart = -1;
  let copyCount = 0;
  let insert: number[] = []; // line indexes of b
  const endCopy = () => {
    if (copyCount > 0) {
      out.push(OP_COPY);
      u32(copyStart);
      u32(copyCount);
    }
    copyCount = 0;
    copyStart = -1;
  };
  const endInsert = () => {
    if (insert.length === 0) return;
    const from = lb.starts[insert[0]];
    const to = lb.ends[insert[insert.length - 1]];
    out.push(OP_INSERT);
    u32(to - from);
    flushOut();
    chunks.push(b.subarray(from, to));
    insert = [];
  };
  for (let j = 0; j < lb.starts.length; j++) {
    const text = dec.decode(b.subarray(lb.starts[j], lb.ends[j]));
    if (copyCount > 0 && copyStart + copyCount < la.starts.length && lineA(copyStart + copyCount) === text) {
      copyCount++;
      continue;
    }
    const at = index.get(text);
    if (at !== undefined) {
      endCopy();
      endInsert();
      copyStart = at;
      copyCount = 1;
    } else {
      endCopy();
      insert.push(j);
    }
  }
  endCopy();
  endInsert();
  out.push(OP_END);
  flushOut();
  const head = new Uint8Array(16);
  head.set(DELTA_MAGIC, 0);
  const dv = new DataView(head.buffer);
  dv.setUint32(4, Math.floor(baseSerial / 2 ** 32));
  dv.setUint32(8, baseSerial >>> 0);
  dv.setUint32(12, a.length);
  const sig = next.subarray(next.length - ED25519_SIGNATURE_LEN);
  const total = head.length + chunks.reduce((n, c) => n + c.length, 0) + sig.length;
  const delta = new Uint8Array(total);
  let off = 0;
  for (const c of [head, ...chunks, sig]) {
    delta.set(c, off);
    off += c.length;
  }
  return delta;
}

/** The serial a delta applies to, or NaN if it is not a delta. */
export function deltaBaseSerial(delta: Uint8Array): number {
  if (delta.length < 16 + 1 + ED25519_SIGNATURE_LEN) return NaN;
  for (let i = 0; i < 4; i++) if (delta[i] !== DELTA_MAGIC[i]) return NaN;
  const dv = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
  return dv.getUint32(4) * 2 ** 32 + dv.getUint32(8);
}

/**
 * The signed roster a delta makes of `base` (whose serial the caller matched), or null when the
 * delta is malformed or not for these bytes. Bounded: the result is at most `maxBytes`.
 */
export function applyDelta(base: Uint8Array, delta: Uint8Array, maxBytes: number): Uint8Array | null {
  if (!Number.isFinite(deltaBaseSerial(delta))) return null;
  const a = docOf(base);
  const dv = new DataView(delta.buffer, delta.byteOffset, delta.byteLength);
  if (dv.getUint32(12) !== a.length) return null;
  const la = lines(a);
  const end = delta.length - ED25519_SIGNATURE_LEN;
  const parts: Uint8Array[] = [];
  let size = 0;
  let off = 16;
  const add = (p: Uint8Array): boolean => {
    size += p.length + (parts.length > 0 ? 1 : 0);
    parts.push(p);
    return size <= maxBytes;
  };
  for (;;) {
    if (off >= end) return null;
    const op = delta[off++];
    if (op === OP_END) break;
    if (op === OP_COPY) {
      if (off + 8 > end) return null;
      const start = dv.getUint32(off);
      const count = dv.getUint32(off + 4);
      off += 8;
      if (count === 0 || start + count > la.starts.length) return null;
      if (!add(a.subarray(la.starts[start], la.ends[start + count - 1]))) return null;
    } else if (op === OP_INSERT) {
      if (off + 4 > end) return null;
      const len = dv.getUint32(off);
      off += 4;
      if (off + len > end) return null;
      if (!add(delta.subarray(off, off + len))) return null;
      off += len;
    } else return null;
  }
  if (off !== end) return null;
  const out = new Uint8Array(ROSTER_HEADER_LEN + size + ED25519_SIGNATURE_LEN);
  out.set(ROSTER_MAGIC, 0);
  out[4] = ROSTER_FORMAT_VERSION;
  new DataView(out.buffer).setUint32(5, size);
  let w = ROSTER_HEADER_LEN;
  parts.forEach((p, i) => {
    if (i > 0) out[w++] = NL;
    out.set(p, w);
    w += p.length;
  });
  out.set(delta.subarray(end), w);
  return out;
}
