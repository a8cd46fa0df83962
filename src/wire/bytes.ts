// Copying bytes out of a possibly shared buffer. Beware: on a Node Buffer, `.slice()` is a view
// (like `.subarray()`), not a copy; anything kept after the buffer is reused must go through here.

/** A copy of b[start, end) that shares no memory with `b`. */
export function copyBytes(b: Uint8Array, start = 0, end = b.length): Uint8Array {
  return new Uint8Array(b.subarray(start, end));
}
