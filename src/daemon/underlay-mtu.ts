// The underlay's MTU, for the TUN's when the config sets none (as wg-quick picks one): the largest
// MTU of the interfaces holding a default route, else of any interface that is up (loopback and
// meshd's own aside), else 1500. Read from /proc and /sys: no subprocess at start-up.
import { readdirSync, readFileSync } from 'node:fs';

/** What WireGuard adds to a packet over IPv6 (40 IP + 8 UDP + 32): the TUN MTU is the underlay's minus this. */
export const WIREGUARD_OVERHEAD = 80;
/** The TUN never goes below IPv6's minimum link MTU (Linux drops a link's IPv6 addresses below it). */
export const MIN_TUN_MTU = 1280;
const FALLBACK_UNDERLAY_MTU = 1500;

/** Interfaces holding an IPv4 default route in /proc/net/route text (destination and mask 0). */
export function defaultRouteDevsV4(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[1] === '00000000' && f[7] === '00000000') out.push(f[0]);
  }
  return out;
}

/** Interfaces holding an IPv6 default route in /proc/net/ipv6_route text (::/0, not the unreachable stub on lo). */
export function defaultRouteDevsV6(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 10 && /^0{32}$/.test(f[0]) && f[1] === '00' && f[9] !== 'lo') out.push(f[9]);
  }
  return out;
}

function read(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

function mtuOf(dev: string): number {
  const n = Number(read(`/sys/class/net/${dev}/mtu`).trim());
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** The underlay MTU as described above; `own` is meshd's interface (never counted). */
export function underlayMtu(own: string): number {
  const defaults = [...defaultRouteDevsV4(read('/proc/net/route')), ...defaultRouteDevsV6(read('/proc/net/ipv6_route'))].filter((d) => d !== own);
  let best = Math.max(0, ...defaults.map(mtuOf));
  if (best > 0) return best;
  let devs: string[] = [];
  try {
    devs = readdirSync('/sys/class/net');
  } catch {
    // no sysfs: the fallback
  }
  for (const d of devs) {
    if (d === 'lo' || d === own) continue;
    const state = read(`/sys/class/net/${d}/operstate`).trim();
    if (state === 'up' || state === 'unknown') best = Math.max(best, mtuOf(d));
  }
  return best > 0 ? best : FALLBACK_UNDERLAY_MTU;
}

/** The TUN MTU for an underlay MTU: WireGuard's overhead off, not below MIN_TUN_MTU. */
export function tunMtuFor(underlay: number): number {
  return Math.max(MIN_TUN_MTU, underlay - WIREGUARD_OVERHEAD);
}
