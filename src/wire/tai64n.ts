// TAI64N timestamps (12 bytes, big-endian) for handshake initiations.
export const TAI64N_LEN = 12;
const TAI64_BASE_SECONDS_HI = 0x4000_0000; // 2^62 split as hi word of 2^32 units
// Round nanoseconds down to about 16 ms so a timestamp does not leak a precise clock
// (wireguard-go's "whitener" does the same).
const WHITENER_MASK_NS = 0x100_0000 - 1;

/** TAI64N for wall-clock time `wallMs` (milliseconds since the Unix epoch). */
export function tai64n(wallMs: number): Uint8Array {
  const out = new Uint8Array(TAI64N_LEN);
  const secs = Math.floor(wallMs / 1000);
  const nanos = Math.floor((wallMs - secs * 1000) * 1e6);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, TAI64_BASE_SECONDS_HI + Math.floor(secs / 0x1_0000_0000), false);
  dv.setUint32(4, secs >>> 0, false);
  dv.setUint32(8, nanos - (nanos & WHITENER_MASK_NS) + 0, false);
  return out;
}

/** Compares two TAI64N timestamps bytewise: negative, zero or positive. */
export function compareTai64n(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < TAI64N_LEN; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}
