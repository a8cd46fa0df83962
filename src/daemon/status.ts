// The daemon's status as JSON (meshd status --json) and as lines for people.
import { keyToBase64 } from '../crypto/keys.js';
import { formatCidr } from '../tunnel/cidr.js';
import type { Device } from '../tunnel/device.js';
import { formatEndpoint } from '../tunnel/endpoint.js';

import type { Peer } from '../tunnel/peer.js';
import type { RelayStatus } from '../transport/relays.js';
import type { OwnEndpoint } from '../transport/endpoints.js';
import type { MembershipStatus } from './membership.js';
import type { NameServerStatus } from './name-server.js';
import type { FirewallStatus } from './firewall.js';
import type { SplitDnsStatus } from './split-dns.js';
import type { BirthdayPeerStatus } from '../transport/birthday-probe.js';

/** A mesh daemon's roster state, its name server and its access policy. */
export type MeshStatus = MembershipStatus & { policy: FirewallStatus };

/** The name server (a mesh's names, or a static config's Domain =) and its registration with the host resolver. */
export type NamesStatus = NameServerStatus & { domain: string | null; resolver: SplitDnsStatus };

/** `via`: how the direct path was found, when not by the usual hole punch. */
export type PathStatus = { kind: 'direct'; endpoint: string; via?: 'birthday probing' } | { kind: 'relay'; relay: string; why: string } | { kind: 'none'; why: string };

/**
 * The largest packet sent to a peer now, and where the figure comes from: the config's MTU =, the
 * direct path's probe (or its search under way, or the safe default where no probe can run: a plain
 * WireGuard peer), or the TUN's MTU while the relay (a TCP stream) carries the traffic.
 */
export interface PathMtuStatus {
  mtu: number;
  source: 'configured' | 'probed' | 'probing' | 'default' | 'relay';
}

export interface PeerStatus {
  publicKey: string;
  name: string | null;
  /** A roster member's NAME.DOMAIN (null: not a member). */
  dnsName: string | null;
  allowedIps: string[];
  endpoint: string | null;
  path: PathStatus;
  /** ms since the epoch, or null before the first handshake. */
  latestHandshake: number | null;
  rxBytes: number;
  txBytes: number;
  rttMs: number | null;
  pathMtu: PathMtuStatus;
  /** Birthday probing towards the peer (null: off, or never considered). */
  birthday: BirthdayPeerStatus | null;
  persistentKeepalive: number;
}

export interface DaemonStatus {
  interface: string;
  publicKey: string;
  listenPort: number;
  addresses: string[];
  mtu: number;
  endpoints: OwnEndpoint[];
  natMappingVariesByDestination: boolean | null;
  /** The mapping varies and the NAT hands out ports in order (both-hard birthday probing can meet). */
  natPortsInOrder: boolean;
  relays: RelayStatus[];
  peers: PeerStatus[];
  drops: { outside: Record<string, number>; inside: Record<string, number> };
  /** Control-plane packet counts: handshake initiations sent, disco messages by type. */
  counters: Record<string, number>;
  dataPath: DataPathStatus;
  /** With MeshKey: the roster run (serial, members), refusals by reason, each relay's serial. */
  mesh: MeshStatus | null;
  /** With a mesh or Domain =: the name server on the mesh addresses. */
  names: NamesStatus | null;
}

/** How packets move: the UDP socket implementation, TUN offloads, the AEAD backend. */
export interface DataPathStatus {
  udp: string;
  tunOffload: boolean;
  /** The TUN takes UDP segmentation offload too (Linux 6.2+). */
  tunUso: boolean;
  aead: string;
}

export interface StatusContext {
  iface: string;
  listenPort: number;
  addresses: string[];
  relays: RelayStatus[];
  endpoints: OwnEndpoint[];
  natMappingVariesByDestination: boolean | null;
  natPortsInOrder: boolean;
  discoDrops: Record<string, number>;
  counters: Record<string, number>;
  dataPath: DataPathStatus;
  mesh: MeshStatus | null;
  names: NamesStatus | null;
  dnsNameOf(p: Peer): string | null;
  /** Drops counted by the socket and TUN layers, merged into the device's. */
  ioDrops: { outside: Record<string, number>; inside: Record<string, number> };
  pathOf(p: Peer): PathStatus;
  rttOf(p: Peer): number | null;
  pathMtuOf(p: Peer): PathMtuStatus;
  birthdayOf(p: Peer): BirthdayPeerStatus | null;
}

export function buildStatus(dev: Device, ctx: StatusContext): DaemonStatus {
  const peers: PeerStatus[] = [];
  for (const p of dev.peers.values()) {
    peers.push({
      publicKey: keyToBase64(p.publicKey),
      name: p.name ?? null,
      dnsName: ctx.dnsNameOf(p),
      allowedIps: dev.allowedIps.prefixesOf(p).map(formatCidr),
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : null,
      path: ctx.pathOf(p),
      latestHandshake: p.lastHandshakeWallMs > 0 ? p.lastHandshakeWallMs : null,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
      rttMs: ctx.rttOf(p),
      pathMtu: ctx.pathMtuOf(p),
      birthday: ctx.birthdayOf(p),
      persistentKeepalive: p.persistentKeepaliveSec,
    });
  }
  return {
    interface: ctx.iface,
    publicKey: keyToBase64(dev.publicKey),
    listenPort: ctx.listenPort,
    addresses: ctx.addresses,
    mtu: dev.mtu,
    endpoints: ctx.endpoints,
    natMappingVariesByDestination: ctx.natMappingVariesByDestination,
    natPortsInOrder: ctx.natPortsInOrder,
    relays: ctx.relays,
    peers,
    drops: {
      outside: { ...dev.outsideDrops.snapshot(), ...ctx.discoDrops, ...ctx.ioDrops.outside },
      inside: { ...dev.insideDrops.snapshot(), ...ctx.ioDrops.inside },
    },
    counters: ctx.counters,
    dataPath: ctx.dataPath,
    mesh: ctx.mesh,
    names: ctx.names,
  };
}

const PATH_MTU_SOURCE: Record<PathMtuStatus['source'], string> = {
  configured: 'MTU = in the config',
  probed: 'probed',
  probing: 'probing',
  default: 'not probed: the safe default',
  relay: 'relayed: the interface MTU',
};

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
  out.push(`  data path: UDP ${s.dataPath.udp}; TUN ${s.dataPath.tunOffload ? `with TSO/GRO offload${s.dataPath.tunUso ? ', UDP too' : ''}` : 'without offload'}; AEAD ${s.dataPath.aead}`);
  const dropped = Object.entries(s.drops.outside).filter(([, v]) => v > 0);
  const lost = Object.entries(s.drops.inside).filter(([, v]) => v > 0);
  for (const e of s.endpoints) out.push(`  endpoint: ${e.endpoint} (${e.source})`);
  if (s.natMappingVariesByDestination !== null) out.push(`  NAT mapping varies by destination: ${s.natMappingVariesByDestination ? `yes (hard NAT: peers may need the relay${s.natPortsInOrder ? '; it hands out ports in order' : ''})` : 'no'}`);
  if (s.names) out.push(...formatNames(s.names));
  if (s.mesh) {
    const refused = Object.entries(s.mesh.rejected).filter(([, v]) => v > 0);
    out.push(`  mesh: ${s.mesh.meshKey}, roster serial ${s.mesh.serial}${s.mesh.issued ? ` signed ${new Date(s.mesh.issued).toISOString()}` : ' (none yet)'}, ${s.mesh.members} members${refused.length ? `; refused ${refused.map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}`);
    out.push(...formatPolicy(s.mesh.policy));
  }
  for (const r of s.relays) out.push(`  relay: ${r.url} ${r.state}${r.latencyMs !== null ? ` (${r.latencyMs} ms)` : ''}${r.state !== 'connected' && r.lastError ? ` — ${r.lastError}` : ''}`);
  if (dropped.length) out.push(`  dropped from network: ${dropped.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (lost.length) out.push(`  dropped on the way out: ${lost.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  for (const p of s.peers) {
    out.push('');
    const label = p.dnsName ?? p.name;
    out.push(`peer: ${label ? `${label} (${p.publicKey})` : p.publicKey}`);
    out.push(`  allowed ips: ${p.allowedIps.join(', ') || '(none)'}`);
    if (p.path.kind === 'direct') out.push(`  path: direct ${p.path.endpoint}${p.path.via ? ` via ${p.path.via}` : ''}`);
    else if (p.path.kind === 'relay') out.push(`  path: relay ${p.path.relay} (${p.path.why})`);
    else out.push(`  path: none (${p.path.why})`);
    if (p.endpoint) out.push(`  endpoint: ${p.endpoint}`);
    if (p.latestHandshake) out.push(`  latest handshake: ${ago(nowMs - p.latestHandshake)}`);
    if (p.rttMs !== null) out.push(`  round trip: ${p.rttMs.toFixed(1)} ms`);
    out.push(`  path MTU: ${p.pathMtu.mtu} (${PATH_MTU_SOURCE[p.pathMtu.source]})`);
    const b = p.birthday;
    if (b && p.path.kind !== 'direct' && (b.role || b.attempts > 0 || (b.why && /symmetric/.test(b.why)))) {
      out.push(`  birthday probing: ${b.state}${b.role ? ` (${b.role} side)` : ''}${b.why ? `: ${b.why}` : ''}; ${b.attempts} attempts, ${b.probesSent} probes`);
    }
    out.push(`  transfer: ${bytes(p.rxBytes)} received, ${bytes(p.txBytes)} sent`);
    if (p.persistentKeepalive) out.push(`  persistent keepalive: every ${p.persistentKeepalive} seconds`);
  }
  return out.join('\n');
}

function formatPolicy(p: FirewallStatus): string[] {
  if (p.error) return [`  access policy: NOT ENFORCED — ${p.error}`];
  if (!p.table) return ['  access policy: none (every member reaches every port of this host)'];
  const accepted = Object.entries(p.accepted).filter(([, c]) => c.packets > 0).map(([k, c]) => `rule ${k} ${c.packets}`);
  return [
    `  access policy: ${p.rules} rules, nftables table inet ${p.table}`,
    `    refused: ${p.refused.default.packets} arriving (no rule), ${p.refused.send.packets} not allowed to send, ${p.refused.invalid.packets} invalid; ${p.cut} connections cut${accepted.length ? `; new connections admitted: ${accepted.join(', ')}` : ''}`,
  ];
}

function formatNames(n: NamesStatus): string[] {
  const out = [`  names: ${n.domain ?? '(domain not known yet)'} on ${n.listen.join(', ') || '(no address could be bound)'}`];
  const r = n.resolver;
  if (r.applied) out.push(`    host resolver: ${r.backend} (${r.backend === 'systemd-resolved' ? `~${r.domain} on this interface` : `resolvconf record, search ${r.domain}`})`);
  else if (r.error) out.push(`    host resolver: not registered — ${r.error}`);
  else if (r.hint) out.push(`    host resolver: not registered — ${r.hint}`);
  return out;
}
