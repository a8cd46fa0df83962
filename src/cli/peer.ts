// meshd peer add / remove / list: edit a config file's peers, keeping everything else intact.
import { readFileSync, existsSync } from 'node:fs';
import { keyId, keyToBase64, parsePresharedKey, parsePublicKey, publicKeyOf } from '../crypto/keys.js';
import { ConfigError } from '../errors.js';
import { parseConfig, parseHostPort, type MeshConfig } from '../config/config.js';
import { appendPeer, removePeer } from '../config/editor.js';
import { allocateAddresses, overlaps } from '../config/allocate.js';
import { withFileLock, writeFileAtomic } from '../config/write.js';
import { formatCidr, parseCidr, type Cidr } from '../tunnel/cidr.js';
import { liveInvites, loadInvites } from '../config/invites.js';

/** Addresses held by invitations that are neither used nor expired. */
export function reservedByInvites(file: string): Cidr[] {
  return liveInvites(loadInvites(file), Date.now()).flatMap((p) => p.allowedIps.map((s) => parseCidr(s)!));
}
import { controlRequest, controlSocketPath } from '../control/control.js';
import type { DaemonStatus } from '../daemon/status.js';

export interface PeerAddOptions {
  publicKey: string;
  name?: string;
  allowedIps?: string;
  endpoint?: string;
  persistentKeepalive?: string;
  presharedKeyFile?: string;
  comment?: string;
}

export interface AddedPeer {
  publicKey: string;
  name: string | null;
  allowedIps: string[];
  file: string;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code}`);
  }
}

/** Validates a new peer against the config; returns its AllowedIPs (allocated if not given). */
export function checkNewPeer(cfg: MeshConfig, o: PeerAddOptions, reserved: Cidr[] = []): string[] {
  let pub;
  try {
    pub = parsePublicKey(o.publicKey);
  } catch {
    throw new ConfigError(`--public-key: "${o.publicKey}" is not a base64 public key`);
  }
  if (keyId(publicKeyOf(cfg.iface.privateKey)) === keyId(pub)) throw new ConfigError(`--public-key: ${o.publicKey} is this host's own key`);
  const dupKey = cfg.peers.find((p) => keyId(p.publicKey) === keyId(pub));
  if (dupKey) throw new ConfigError(`${cfg.file}:${dupKey.line}: a peer with public key ${o.publicKey} already exists${dupKey.name ? ` (${dupKey.name})` : ''}`);
  if (o.name !== undefined) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(o.name)) throw new ConfigError(`--name: "${o.name}" is not a valid name (letters, digits, _ . -)`);
    const dupName = cfg.peers.find((p) => p.name === o.name);
    if (dupName) throw new ConfigError(`${cfg.file}:${dupName.line}: a peer named ${o.name} already exists`);
  }
  if (o.endpoint !== undefined && !parseHostPort(o.endpoint)) throw new ConfigError(`--endpoint: "${o.endpoint}" is not host:port`);
  if (o.persistentKeepalive !== undefined && !/^\d{1,5}$/.test(o.persistentKeepalive)) throw new ConfigError(`--persistent-keepalive: "${o.persistentKeepalive}" is not a number of seconds`);
  const ips = o.allowedIps !== undefined ? o.allowedIps.split(',').map((s) => s.trim()).filter(Boolean) : allocateAddresses(cfg, reserved);
  for (const s of ips) {
    const c = parseCidr(s);
    if (!c) throw new ConfigError(`--allowed-ips: "${s}" is not an IP prefix`);
    for (const p of cfg.peers) {
      const clash = p.allowedIps.find((q) => overlaps(q, c));
      if (clash) throw new ConfigError(`${cfg.file}:${p.line}: --allowed-ips ${s} overlaps ${formatCidr(clash)} of peer ${p.name ?? keyToBase64(p.publicKey)}`);
    }
  }
  return ips.map((s) => formatCidr(parseCidr(s)!));
}

/** Adds a peer to the config file (locked, validated, atomic). */
export async function peerAdd(file: string, o: PeerAddOptions, iface?: string): Promise<AddedPeer> {
  return withFileLock(file, () => peerAddLocked(file, o, iface));
}

/** peerAdd for a caller that already holds the config's lock. */
export function peerAddLocked(file: string, o: PeerAddOptions, iface?: string): AddedPeer {
  {
    const text = readText(file);
    const cfg = parseConfig(text, file, iface);
    const allowedIps = checkNewPeer(cfg, o, reservedByInvites(file));
    let psk: string | undefined;
    if (o.presharedKeyFile) {
      try {
        psk = keyToBase64(parsePresharedKey(readFileSync(o.presharedKeyFile, 'utf8')));
      } catch {
        throw new ConfigError(`--preshared-key-file: ${o.presharedKeyFile} does not hold a base64 key`);
      }
    }
    const next = appendPeer(text, {
      publicKey: keyToBase64(parsePublicKey(o.publicKey)),
      name: o.name,
      allowedIps,
      endpoint: o.endpoint,
      persistentKeepalive: o.persistentKeepalive ? Number(o.persistentKeepalive) : undefined,
      presharedKey: psk,
      comment: o.comment,
    });
    parseConfig(next, file, iface); // the result must load
    writeFileAtomic(file, next);
    return { publicKey: keyToBase64(parsePublicKey(o.publicKey)), name: o.name ?? null, allowedIps, file };
  }
}

export async function peerRemove(file: string, nameOrKey: string, iface?: string): Promise<{ publicKey: string; name: string | null }> {
  return withFileLock(file, () => {
    const text = readText(file);
    parseConfig(text, file, iface);
    const r = removePeer(text, nameOrKey, file);
    parseConfig(r.text, file, iface);
    writeFileAtomic(file, r.text);
    return { publicKey: r.publicKey, name: r.name ?? null };
  });
}

export interface PeerListEntry {
  /** A pending invitation: address reserved, not yet redeemed by the new host. */
  pending?: { invitation: string; expiresAt: number };
  name: string | null;
  publicKey: string;
  allowedIps: string[];
  endpoint: string | null;
  path: DaemonStatus['peers'][number]['path'] | null;
  latestHandshake: number | null;
}

export async function peerList(file: string, iface?: string): Promise<{ running: boolean; peers: PeerListEntry[] }> {
  const cfg = parseConfig(readText(file), file, iface);
  let live: DaemonStatus | null = null;
  if (existsSync(controlSocketPath(cfg.interfaceName))) {
    live = (await controlRequest(cfg.interfaceName, { cmd: 'status' }).catch(() => null)) as DaemonStatus | null;
  }
  const pending: PeerListEntry[] = liveInvites(loadInvites(file), Date.now()).map((i) => ({
    pending: { invitation: i.id, expiresAt: i.expiresAt },
    name: i.name,
    publicKey: i.enrollmentPublicKey,
    allowedIps: i.allowedIps,
    endpoint: null,
    path: null,
    latestHandshake: null,
  }));
  return {
    running: live !== null,
    peers: [...cfg.peers.map((p) => {
      const key = keyToBase64(p.publicKey);
      const l = live?.peers.find((q) => q.publicKey === key);
      return {
        name: p.name ?? null,
        publicKey: key,
        allowedIps: p.allowedIps.map(formatCidr),
        endpoint: p.endpoint ? `${p.endpoint.host.includes(':') ? `[${p.endpoint.host}]` : p.endpoint.host}:${p.endpoint.port}` : null,
        path: l ? l.path : null,
        latestHandshake: l ? l.latestHandshake : null,
      };
    }), ...pending],
  };
}
