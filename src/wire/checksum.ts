// The Internet checksum (RFC 1071) over big-endian 16-bit words. Pure, no I/O.

/** The sum of b[off, off+len) as 16-bit words (an odd last byte padded), added to `sum`; carries not folded. */
export function sum16(b: Uint8Array, off: number, len: number, sum = 0): number {
  let i = 0;
  for (; i + 1 < len; i += 2) sum += (b[off + i] << 8) | b[off + i + 1];
  if (i < len) sum += b[off + i] << 8;
  return sum;
}

/** `sum` with its carries folded back in: 0 … 0xffff (0xffff over data whose checksum is right). */
export function foldSum(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** The checksum field's value for `sum`: the ones' complement of the folded sum. */
export function checksum(sum: number): number {
  return ~foldSum(sum) & 0xffff;
}
