// The daemon's status as JSON (meshd status --json) and as lines for people.
import { keyToBase64 } from '../crypto/keys.js';
import { formatCidr } from '../tunnel/cidr.js';
import type { Device } from '../tunnel/device.js';
import { formatEndpoint } from '../tunnel/endpoint.js';

export type PathStatus = { kind: 'direct'; endpoint: string } | { kind: 'none' };

export interface PeerStatus {
  publicKey: string;
  name: string | null;
  allowedIps: string[];
  endpoint: string | null;
  path: PathStatus;
  /** ms since the epoch, or null before the first handshake. */
  latestHandshake: number | null;
  rxBytes: number;
  txBytes: number;
  rttMs: number | null;
  persistentKeepalive: number;
}

export interface DaemonStatus {
  interface: string;
  publicKey: string;
  listenPort: number;
  addresses: string[];
  mtu: number;
  peers: PeerStatus[];
  drops: { outside: Record<string, number>; inside: Record<string, number> };
}

export function buildStatus(dev: Device, iface: string, listenPort: number, addresses: string[]): DaemonStatus {
  const now = dev.clock.wall();
  const peers: PeerStatus[] = [];
  for (const p of dev.peers.values()) {
    const live = p.lastHandshakeWallMs > 0 && now - p.lastHandshakeWallMs < dev.timers.rejectAfterTimeMs;
    peers.push({
      publicKey: keyToBase64(p.publicKey),
      name: p.name ?? null,
      allowedIps: dev.allowedIps.prefixesOf(p).map(formatCidr),
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
      path: live && p.endpoint ? { kind: 'direct', endpoint: formatEndpoint(p.endpoint) } : { kind: 'none' },
      latestHandshake: p.lastHandshakeWallMs > 0 ? p.lastHandshakeWallMs : null,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      rttMs: null,
      persistentKeepalive: p.persistentKeepaliveSec,
    });
  }
  return {
    interface: iface,
    publicKey: keyToBase64(dev.publicKey),
    listenPort,
    addresses,
    mtu: dev.mtu,
    peers,
    drops: { outside: dev.outsideDrops.snapshot(), inside: dev.insideDrops.snapshot() },
  };
}

function ago(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} seconds ago`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes, ${s % 60} seconds ago`;
  return `${Math.floor(s / 3600)} hours, ${Math.floor((s % 3600) / 60)} minutes ago`;
}

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(2)} ${units[i]}`;
}

export function formatStatus(s: DaemonStatus, nowMs: number): string {
  const out: string[] = [];
  out.push(`interface: ${s.interface}`);
  out.push(`  public key: ${s.publicKey}`);
  out.push(`  listening port: ${s.listenPort}`);
  out.push(`  addresses: ${s.addresses.join(', ') || '(none)'}`);
  const dropped = Object.entries(s.drops.outside).filter(([, v]) => v > 0);
  if (dropped.length) out.push(`  dropped from network: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const p of s.peers) {
    out.push('');
    out.push(`peer: ${p.name ? `${p.name} (${p.publicKey})` : p.publicKey}`);
    out.push(`  allowed ips: ${p.allowedIps.join(', ') || '(none)'}`);
    if (p.path.kind === 'direct') out.push(`  path: direct ${p.path.endpoint}`);
    else out.push(`  path: none (${p.endpoint ? `no handshake yet with ${p.endpoint}` : 'no endpoint known: the peer must contact us first'})`);
    if (p.latestHandshake) out.push(`  latest handshake: ${ago(nowMs - p.latestHandshake)}`);
    out.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) out.push(`  persistent keepalive: every ${p.persistentKeepalive} seconds`);
  }
  return out.join('\n');
}
