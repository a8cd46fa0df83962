// A signed roster travels over a relay as parts (roster and publish frames, src/wire/relay.ts): a
// 10,000-member roster (~2.4 MB) is far above the packet frame limit, and raising that limit for
// every frame would let any client make the relay buffer megabytes per message. Parts go in order on
// one connection (WebSocket keeps it), offset 0 first; the receiver assembles them into a buffer of
// the announced total, bounded by its own roster limit. Pure: no I/O.
import { FRAME_PUBLISH, FRAME_ROSTER, FRAME_ROSTER_DELTA, ROSTER_PART_HEADER_LEN, encodeRosterPart } from './relay.js';

/** Bytes of roster per part: well inside the relay's default 256 KiB frame limit. */
export const ROSTER_PART_BYTES = 128 * 1024;

/** The frames that carry `signed` (a whole signed roster) as parts of at most `partBytes`. */
export function rosterParts(type: typeof FRAME_ROSTER | typeof FRAME_PUBLISH | typeof FRAME_ROSTER_DELTA, meshKey: Uint8Array, signed: Uint8Array, maxFrameBytes = ROSTER_PART_BYTES + ROSTER_PART_HEADER_LEN): Buffer[] {
  const part = Math.max(1, Math.min(ROSTER_PART_BYTES, maxFrameBytes - ROSTER_PART_HEADER_LEN));
  const out: Buffer[] = [];
  for (let off = 0; off < signed.length; off += part) {
    out.push(encodeRosterPart(type, meshKey, signed.length, off, signed.subarray(off, Math.min(signed.length, off + part))));
  }
  return out;
}

export type PartResult =
  | { kind: 'more' }
  | { kind: 'done'; bytes: Uint8Array }
  | { kind: 'refused'; reason: 'roster-oversized' | 'roster-out-of-order' };

/**
 * Assembles the parts of one roster at a time from one sender. A part at offset 0 starts over (the
 * sender began another roster); any other part must continue exactly where the last one ended, for
 * the same mesh and total, or the roster in progress is abandoned.
 */
export class RosterAssembler {
  private buf: Uint8Array | null = null;
  private meshKey: Uint8Array | null = null;
  private filled = 0;

  constructor(private readonly maxBytes: number) {}

  add(meshKey: Uint8Array, total: number, offset: number, bytes: Uint8Array): PartResult {
    if (total > this.maxBytes) {
      this.reset();
      return { kind: 'refused', reason: 'roster-oversized' };
    }
    if (offset === 0) {
      this.buf = new Uint8Array(total);
      this.meshKey = Uint8Array.from(meshKey);
      this.filled = 0;
    } else if (!this.buf || !this.meshKey || offset !== this.filled || total !== this.buf.length || !sameKey(this.meshKey, meshKey)) {
      this.reset();
      return { kind: 'refused', reason: 'roster-out-of-order' };
    }
    if (offset + bytes.length > total) {
      this.reset();
      return { kind: 'refused', reason: 'roster-out-of-order' };
    }
    this.buf.set(bytes, offset);
    this.filled = offset + bytes.length;
    if (this.filled < total) return { kind: 'more' };
    const done = this.buf;
    this.reset();
    return { kind: 'done', bytes: done };
  }

  reset(): void {
    this.buf = null;
    this.meshKey = null;
    this.filled = 0;
  }
}

function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
