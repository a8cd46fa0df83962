// Copying bytes out of a possibly shared buffer. Beware: on a Node Buffer, `.slice()` is a view
// (like `.subarray()`), not a copy; anything kept after the buffer is reused must go through here.

/** A copy of b[start, end) that shares no memory with `b`. */
export function copyBytes(b: Uint8Array, start = 0, end = b.length): Uint8Array {
  return new Uint8Array(b.subarray(start, end));
}

/** Whether b[x, x+n) and b[y, y+n) hold the same bytes. */
export function sameBytes(b: Uint8Array, x: number, y: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (b[x + k] !== b[y + k]) return false;
  return true;
}
