// IP addresses and prefixes as bytes: parsing and formatting without I/O.
import { isIPv4, isIPv6 } from 'node:net';

export interface IpAddr {
  readonly version: 4 | 6;
  readonly bytes: Uint8Array;
}

export interface Cidr extends IpAddr {
  readonly bits: number;
}

export function parseIp(s: string): IpAddr | null {
  if (isIPv4(s)) return { version: 4, bytes: Uint8Array.from(s.split('.').map(Number)) };
  if (!isIPv6(s)) return null;
  const bytes = new Uint8Array(16);
  let text = s;
  const pct = text.indexOf('%');
  if (pct >= 0) text = text.slice(0, pct);
  let tailV4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.slice(lastColon + 1).includes('.')) {
    tailV4 = text.slice(lastColon + 1).split('.').map(Number);
    text = text.slice(0, lastColon + 1) + '0:0';
  }
  const [head, tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[2 * i] = v >> 8;
    bytes[2 * i + 1] = v & 0xff;
  });
  if (tailV4.length === 4) bytes.set(tailV4, 12);
  return { version: 6, bytes };
}

export function formatIpAddr(a: IpAddr): string {
  if (a.version === 4) return Array.from(a.bytes).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((a.bytes[i] << 8) | a.bytes[i + 1]);
  // Compress the longest run of zero groups (RFC 5952).
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return hex.slice(0, bestStart).join(':') + '::' + hex.slice(bestStart + bestLen).join(':');
}

/** Parses "a.b.c.d/n" or "x::y/n"; a bare address is a host prefix. Host bits are masked off. */
export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  if (!ip) return null;
  const max = ip.version === 4 ? 32 : 128;
  let bits = max;
  if (slash >= 0) {
    const b = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b)) return null;
    bits = Number(b);
    if (bits > max) return null;
  }
  return { version: ip.version, bytes: maskBytes(ip.bytes, bits), bits };
}

/** Like parseCidr, but keeps host bits (an interface Address such as 10.0.0.1/24). */
export function parseInterfaceAddress(s: string): Cidr | null {
  const c = parseCidr(s);
  if (!c) return null;
  const slash = s.indexOf('/');
  const ip = parseIp(slash < 0 ? s : s.slice(0, slash));
  return ip ? { version: c.version, bytes: ip.bytes, bits: c.bits } : null;
}

export function maskBytes(b: Uint8Array, bits: number): Uint8Array {
  const out = Uint8Array.from(b);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, bits - i * 8));
    out[i] &= (0xff00 >> keep) & 0xff;
  }
  return out;
}

export function formatCidr(c: Cidr): string {
  return `${formatIpAddr(c)}/${c.bits}`;
}

export function cidrEqual(a: Cidr, b: Cidr): boolean {
  if (a.version !== b.version || a.bits !== b.bits) return false;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return false;
  return true;
}

/** True when prefix `c` contains address bytes `addr` of the same family. */
export function cidrContains(c: Cidr, addr: IpAddr): boolean {
  if (c.version !== addr.version) return false;
  const m = maskBytes(addr.bytes, c.bits);
  for (let i = 0; i < m.length; i++) if (m[i] !== c.bytes[i]) return false;
  return true;
}
