// "Too big" answers for packets a peer's path cannot carry (path MTU, DESIGN.md §4), written back
// into the TUN as a router on the path would send them, and IPv4 fragmentation for packets that
// allow it. Pure: no I/O.
//
// ICMPv4 destination unreachable, code 4 "fragmentation needed and DF set" (RFC 792, RFC 1191):
//   IPv4 header (20) | type 3 | code 4 | checksum u16 | unused u16 | next-hop MTU u16 | original IP
//   header + the first 8 bytes of its payload
// ICMPv6 packet too big (RFC 4443 §3.2): IPv6 header (40, next header 58) | type 2 | code 0 |
//   checksum u16 | MTU u32 | as much of the original packet as keeps the answer within 1280 bytes
// The answer comes from the original destination (it is routed through the TUN, so the kernel
// accepts it where an answer from its own address would be a martian) to the original source.
import { IPV4_DST_OFF, IPV4_HEADER_MIN, IPV4_SRC_OFF, IPV6_DST_OFF, IPV6_HEADER_LEN, IPV6_SRC_OFF } from './ip.js';
import { checksum, sum16 } from './checksum.js';

/** The smallest MTU an IPv6 link may have (RFC 8200 §5): IPv6 packets up to it are never refused. */
export const IPV6_MIN_MTU = 1280;
/** The smallest MTU every IPv4 host must accept (RFC 791); no path MTU is taken below it. */
export const IPV4_MIN_MTU = 576;
const PROTO_ICMP = 1;
const PROTO_ICMPV6 = 58;
const IPV4_DF = 0x40;
const IPV4_MF = 0x20;

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v & 0xff;
}

/** An IPv4 header's checksum field, recomputed. */
function setIpv4Checksum(b: Uint8Array, off: number, headerLen: number): void {
  put16(b, off + 10, 0);
  put16(b, off + 10, checksum(sum16(b, off, headerLen)));
}

/** Whether an IPv4 packet forbids fragmentation (DF). */
export function ipv4DontFragment(b: Uint8Array, off: number): boolean {
  return (b[off + 6] & IPV4_DF) !== 0;
}

/**
 * Whether a packet must not be answered with an ICMP error (RFC 1122 §3.2.2, RFC 4443 §2.4): an
 * ICMP error itself, or an IPv4 fragment other than the first.
 */
function noErrorAbout(b: Uint8Array, off: number, len: number, v: 4 | 6): boolean {
  if (v === 4) {
    const ihl = (b[off] & 0x0f) * 4;
    const fragOffset = ((b[off + 6] & 0x1f) << 8) | b[off + 7];
    if (fragOffset !== 0) return true;
    if (b[off + 9] === PROTO_ICMP && len > ihl) {
      const type = b[off + ihl];
      return type !== 0 && type !== 8 && type !== 13 && type !== 14; // only echo/timestamp are queries
    }
    return false;
  }
  // The IPv6 next header right after the fixed header (extension headers are not walked: a packet
  // carrying them is answered, which is what a router does).
  return b[off + 6] === PROTO_ICMPV6 && len > IPV6_HEADER_LEN && b[off + IPV6_HEADER_LEN] < 128;
}

/**
 * The "too big" answer to packet b[off, off+len) for a path of `mtu` bytes, or null when none may
 * be sent (an ICMP error, a later fragment, not IP). IPv4: only for packets with DF set (others
 * are fragmented: see fragmentIpv4).
 */
export function packetTooBig(b: Uint8Array, off: number, len: number, mtu: number): Uint8Array | null {
  const v = b[off] >> 4;
  if (v === 4 && len >= IPV4_HEADER_MIN) {
    if (noErrorAbout(b, off, len, 4)) return null;
    const ihl = (b[off] & 0x0f) * 4;
    const quoted = Math.min(len, ihl + 8);
    const out = new Uint8Array(IPV4_HEADER_MIN + 8 + quoted);
    out[0] = 0x45;
    put16(out, 2, out.length);
    out[8] = 64; // TTL
    out[9] = PROTO_ICMP;
    out.set(b.subarray(off + IPV4_DST_OFF, off + IPV4_DST_OFF + 4), IPV4_SRC_OFF);
    out.set(b.subarray(off + IPV4_SRC_OFF, off + IPV4_SRC_OFF + 4), IPV4_DST_OFF);
    setIpv4Checksum(out, 0, IPV4_HEADER_MIN);
    const icmp = IPV4_HEADER_MIN;
    out[icmp] = 3;
    out[icmp + 1] = 4;
    put16(out, icmp + 6, Math.min(mtu, 0xffff));
    out.set(b.subarray(off, off + quoted), icmp + 8);
    put16(out, icmp + 2, checksum(sum16(out, icmp, out.length - icmp)));
    return out;
  }
  if (v === 6 && len >= IPV6_HEADER_LEN) {
    if (noErrorAbout(b, off, len, 6)) return null;
    const quoted = Math.min(len, IPV6_MIN_MTU - IPV6_HEADER_LEN - 8);
    const out = new Uint8Array(IPV6_HEADER_LEN + 8 + quoted);
    out[0] = 0x60;
    put16(out, 4, 8 + quoted);
    out[6] = PROTO_ICMPV6;
    out[7] = 64; // hop limit
    out.set(b.subarray(off + IPV6_DST_OFF, off + IPV6_DST_OFF + 16), IPV6_SRC_OFF);
    out.set(b.subarray(off + IPV6_SRC_OFF, off + IPV6_SRC_OFF + 16), IPV6_DST_OFF);
    const icmp = IPV6_HEADER_LEN;
    out[icmp] = 2;
    out[icmp + 2] = 0;
    const m = Math.max(mtu, IPV6_MIN_MTU);
    out[icmp + 4] = m >>> 24;
    out[icmp + 5] = (m >>> 16) & 0xff;
    out[icmp + 6] = (m >>> 8) & 0xff;
    out[icmp + 7] = m & 0xff;
    out.set(b.subarray(off, off + quoted), icmp + 8);
    // Pseudo-header: source, destination, upper-layer length, next header.
    let s = sum16(out, IPV6_SRC_OFF, 32);
    s += 8 + quoted;
    s += PROTO_ICMPV6;
    put16(out, icmp + 2, checksum(sum16(out, icmp, out.length - icmp, s)));
    return out;
  }
  return null;
}

/**
 * Splits IPv4 packet b[off, off+len) (DF clear) into fragments of at most `mtu` bytes, as a router
 * would (RFC 791): the header is repeated (options too: meshd does not sort copied options from
 * others), offsets in 8-byte units, MF on all but the last (and on the last if the packet was
 * itself a non-final fragment). Null when it cannot be split (the header leaves no room).
 */
export function fragmentIpv4(b: Uint8Array, off: number, len: number, mtu: number): Uint8Array[] | null {
  const ihl = (b[off] & 0x0f) * 4;
  if (ihl < IPV4_HEADER_MIN || ihl > len) return null;
  const chunk = (mtu - ihl) & ~7;
  if (chunk < 8) return null;
  const total = Math.min(len, (b[off + 2] << 8) | b[off + 3]);
  const baseOffset = ((b[off + 6] & 0x1f) << 8) | b[off + 7];
  const moreAfter = (b[off + 6] & IPV4_MF) !== 0;
  const out: Uint8Array[] = [];
  for (let at = ihl; at < total; at += chunk) {
    const n = Math.min(chunk, total - at);
    const f = new Uint8Array(ihl + n);
    f.set(b.subarray(off, off + ihl), 0);
    f.set(b.subarray(off + at, off + at + n), ihl);
    put16(f, 2, f.length);
    const fo = baseOffset + (at - ihl) / 8;
    const last = at + n >= total;
    put16(f, 6, ((last && !moreAfter ? 0 : IPV4_MF) << 8) | fo);
    setIpv4Checksum(f, 0, ihl);
    out.push(f);
  }
  return out;
}
