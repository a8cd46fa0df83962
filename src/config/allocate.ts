// Picks the next free mesh address for a new peer: the lowest host address of the interface's
// prefix (IPv4; 100.64.0.0/10 when the interface has no IPv4 address) and, where the interface
// has one, of its IPv6 prefix, that no interface address or peer AllowedIPs already covers.
import { ConfigError } from '../errors.js';
import { cidrContains, formatIpAddr, maskBytes, parseCidr, type Cidr, type IpAddr } from '../tunnel/cidr.js';
import type { MeshConfig } from './config.js';

export const DEFAULT_MESH_PREFIX_V4 = '100.64.0.0/10';
/** How many addresses are tried at most (a /10 has four million). */
const MAX_SCAN = 1 << 20;

function addOffset(base: Uint8Array, n: number): Uint8Array {
  const out = Uint8Array.from(base);
  let carry = n;
  for (let i = out.length - 1; i >= 0 && carry > 0; i--) {
    const v = out[i] + (carry % 256);
    out[i] = v % 256;
    carry = Math.floor(carry / 256) + Math.floor(v / 256);
  }
  return out;
}

function used(cfg: MeshConfig): Cidr[] {
  return [...cfg.iface.addresses.map((a) => ({ ...a, bits: a.version === 4 ? 32 : 128 })), ...cfg.peers.flatMap((p) => p.allowedIps)];
}

/** The lowest host address of `prefix` that no prefix in `taken` covers, or null when it is full. */
export function firstFreeAddress(prefix: Cidr, taken: readonly Cidr[]): IpAddr | null {
  const base = maskBytes(prefix.bytes, prefix.bits);
  const hostBits = (prefix.version === 4 ? 32 : 128) - prefix.bits;
  const size = hostBits >= 31 ? Number.MAX_SAFE_INTEGER : 2 ** hostBits;
  const last = Math.min(size - (prefix.version === 4 && hostBits > 1 ? 1 : 0), MAX_SCAN);
  // Host addresses (a roster's members, most peers) are looked up in a set; only wider prefixes are
  // scanned: allocating in a 10,000-member mesh stays linear.
  const full = prefix.version === 4 ? 32 : 128;
  const hosts = new Set<string>();
  const wider: Cidr[] = [];
  for (const c of taken) {
    if (c.version !== prefix.version) continue;
    if (c.bits === full) hosts.add(Buffer.from(c.bytes).toString('hex'));
    else wider.push(c);
  }
  for (let n = 1; n < last; n++) {
    const addr = { version: prefix.version, bytes: addOffset(base, n) };
    if (hosts.has(Buffer.from(addr.bytes).toString('hex'))) continue;
    if (!wider.some((c) => cidrContains(c, addr))) return addr;
  }
  return null;
}

function nextFree(prefix: Cidr, taken: Cidr[], file: string): string {
  const addr = firstFreeAddress(prefix, taken);
  if (!addr) throw new ConfigError(`${file}: no free address left in ${formatIpAddr({ version: prefix.version, bytes: maskBytes(prefix.bytes, prefix.bits) })}/${prefix.bits}`);
  return formatIpAddr(addr);
}

/** Addresses (as /32 and /128 AllowedIPs) for a new peer; `reserved` are held by pending invitations. */
export function allocateAddresses(cfg: MeshConfig, reserved: Cidr[] = []): string[] {
  const taken = [...used(cfg), ...reserved];
  const v4 = cfg.iface.addresses.find((a) => a.version === 4) ?? parseCidr(DEFAULT_MESH_PREFIX_V4)!;
  const out = [`${nextFree(v4, taken, cfg.file)}/32`];
  const v6 = cfg.iface.addresses.find((a) => a.version === 6);
  if (v6) out.push(`${nextFree(v6, taken, cfg.file)}/128`);
  return out;
}

/** True when two prefixes overlap (one contains the other's network address). */
export function overlaps(a: Cidr, b: Cidr): boolean {
  if (a.version !== b.version) return false;
  return a.bits <= b.bits ? cidrContains(a, b) : cidrContains(b, a);
}
