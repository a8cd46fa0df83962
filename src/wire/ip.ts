// Peeks at IPv4/IPv6 headers without copying: version, addresses, total length.
//
// IPv4: byte 0 high nibble = 4, total length u16be @2, src @12 (4), dst @16 (4)
// IPv6: byte 0 high nibble = 6, payload length u16be @4 (+40 header), src @8 (16), dst @24 (16)

export const IPV4_HEADER_MIN = 20;
export const IPV6_HEADER_LEN = 40;
export const IPV4_SRC_OFF = 12;
export const IPV4_DST_OFF = 16;
export const IPV6_SRC_OFF = 8;
export const IPV6_DST_OFF = 24;

/** 4 or 6 for a plausible IP header in b[off, off+len), else 0. */
export function ipVersion(b: Uint8Array, off: number, len: number): 0 | 4 | 6 {
  if (len < 1) return 0;
  const v = b[off] >> 4;
  if (v === 4 && len >= IPV4_HEADER_MIN) return 4;
  if (v === 6 && len >= IPV6_HEADER_LEN) return 6;
  return 0;
}

/** The packet's own idea of its length (IPv4 total length, IPv6 payload + 40); 0 if not IP. */
export function ipTotalLength(b: Uint8Array, off: number, len: number): number {
  const v = ipVersion(b, off, len);
  if (v === 4) return (b[off + 2] << 8) | b[off + 3];
  if (v === 6) return ((b[off + 4] << 8) | b[off + 5]) + IPV6_HEADER_LEN;
  return 0;
}

export function formatIp(b: Uint8Array, off: number, version: 4 | 6): string {
  if (version === 4) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[off + i] << 8) | b[off + i + 1]).toString(16));
  return parts.join(':');
}
