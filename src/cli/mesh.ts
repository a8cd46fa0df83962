// meshd mesh init / add / remove / list: a whole mesh managed from its admin host (DESIGN.md §9).
// Each edit is signed with the admin key and handed to the running daemon, which applies it and
// publishes it to its relays; with no daemon running, the command publishes to the relays itself.
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { ConfigError, MeshdError, UsageError } from '../errors.js';
import { loadConfig, parseConfig, rosterFile, type MeshConfig } from '../config/config.js';
import { addInterfaceEntry } from '../config/editor.js';
import { withFileLock, writeFileAtomic } from '../config/write.js';
import { generateMeshKey, meshKeyToBase64 } from '../crypto/ed25519.js';
import { keyId, keyToBase64, parsePublicKey, publicKeyOf } from '../crypto/keys.js';
import { cidrContains, formatCidr, formatIpAddr, parseCidr, type Cidr } from '../tunnel/cidr.js';
import { firstFreeAddress } from '../config/allocate.js';
import { addMember, DEFAULT_PREFIX_V4, newRoster, removeMember, setGroups, setPolicy } from '../mesh/edit.js';
import { checkPolicy, parsePolicy, type Policy } from '../mesh/policy.js';
import { editRoster, readCachedRoster, writeAdminKey, writeFirstRoster } from '../mesh/admin.js';
import { checkRoster, type Roster, type RosterDoc } from '../mesh/roster.js';
import { controlRequest, controlSocketPath } from '../control/control.js';
import { RelayClient } from '../transport/relay-client.js';
import { createLogger } from '../log.js';
import { liveInvites, loadInvites } from '../config/invites.js';
import type { DaemonStatus } from '../daemon/status.js';
import type { MeshListing } from '../daemon/membership.js';
import { parseDuration } from './duration.js';

const rng = (n: number) => new Uint8Array(randomBytes(n));

/** A host name as a member name: lower case, letters, digits and inner hyphens. */
export function memberNameFrom(s: string): string {
  const n = s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63).replace(/-+$/, '');
  return n || 'host';
}

export interface InitOptions {
  domain?: string;
  prefix?: string;
  name?: string;
  endpoint?: string;
}

/** meshd mesh init: an admin key, MeshKey in the config, roster serial 1 with this host. */
export async function meshInit(file: string, o: InitOptions): Promise<{ meshKey: string; adminKeyFile: string; roster: string; serial: number; name: string; addresses: string[] }> {
  return withFileLock(file, () => {
    const cfg = loadConfig(file);
    if (cfg.iface.meshKey) throw new ConfigError(`${file}: already in a mesh (MeshKey = ${meshKeyToBase64(cfg.iface.meshKey)})`);
    if (existsSync(rosterFile(file))) throw new ConfigError(`${rosterFile(file)} exists: remove it to start a new mesh`);
    const prefixes = meshPrefixes(cfg, o.prefix);
    const own = cfg.iface.addresses.map((a) => ({ ...a, bits: a.version === 4 ? 32 : 128 })).filter((a) => prefixes.some((p) => p.version === a.version && cidrContains(p, a)));
    if (own.length === 0) throw new ConfigError(`${file}: [Interface] Address has no address inside ${prefixes.map(formatCidr).join(', ')} (give --prefix, or an Address in it)`);
    const mk = generateMeshKey(rng);
    const name = memberNameFrom(o.name ?? hostname());
    const doc = newRoster(
      {
        meshKey: mk.publicKey,
        domain: o.domain,
        prefixes,
        relays: cfg.iface.relays,
        stun: cfg.iface.stun.map((s) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`),
        first: { name, publicKey: publicKeyOf(cfg.iface.privateKey), addresses: own, endpoint: o.endpoint ?? null },
      },
      Date.now(),
    );
    const next = addInterfaceEntry(readFileSync(file, 'utf8'), 'MeshKey', meshKeyToBase64(mk.publicKey), file);
    parseConfig(next, file);
    const adminKeyFile = writeAdminKey(file, mk.privateKey);
    const r = writeFirstRoster(file, doc, mk.privateKey);
    writeFileAtomic(file, next);
    return { meshKey: meshKeyToBase64(mk.publicKey), adminKeyFile, roster: rosterFile(file), serial: r.serial, name, addresses: own.map(formatCidr) };
  });
}

/** --prefix, else the networks of the config's addresses, else 100.64.0.0/10. */
function meshPrefixes(cfg: MeshConfig, prefix: string | undefined): Cidr[] {
  if (prefix) {
    const out = prefix.split(',').map((s) => {
      const c = parseCidr(s.trim());
      if (!c) throw new UsageError(`--prefix: "${s}" is not an IP prefix`);
      return c;
    });
    return out;
  }
  const nets = cfg.iface.addresses.filter((a) => a.bits < (a.version === 4 ? 32 : 128)).map((a) => parseCidr(`${formatIpAddr(a)}/${a.bits}`)!);
  const v4 = nets.find((n) => n.version === 4);
  const v6 = nets.find((n) => n.version === 6);
  return [v4 ?? parseCidr(DEFAULT_PREFIX_V4)!, ...(v6 ? [v6] : [])];
}

/** Addresses free for a new member: not a member's, and not held by a pending invitation. */
export function freeMemberAddresses(doc: RosterDoc, reserved: Cidr[]): Cidr[] {
  const taken = [...doc.members.flatMap((m) => m.addresses), ...reserved];
  return doc.prefixes.map((p) => {
    const a = firstFreeAddress(p, taken);
    if (!a) throw new ConfigError(`no free address left in ${formatCidr(p)}`);
    return { ...a, bits: a.version === 4 ? 32 : 128 };
  });
}

export function reservedByMeshInvites(file: string): Cidr[] {
  return liveInvites(loadInvites(file), Date.now()).flatMap((p) => p.allowedIps.map((s) => parseCidr(s)!));
}

export interface AddOptions {
  name: string;
  publicKey: string;
  groups?: string;
  address?: string;
  expires?: string;
  endpoint?: string;
}

export function groupsOf(v: string | undefined): string[] {
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : [];
}

export async function meshAdd(file: string, o: AddOptions): Promise<{ name: string; publicKey: string; addresses: string[]; groups: string[]; serial: number; published: PublishResult }> {
  let pub;
  try {
    pub = parsePublicKey(o.publicKey);
  } catch {
    throw new UsageError(`--public-key: "${o.publicKey}" is not a base64 public key`);
  }
  const addresses = o.address?.split(',').map((s) => {
    const c = parseCidr(s.trim().includes('/') ? s.trim() : `${s.trim()}/${s.includes(':') ? 128 : 32}`);
    if (!c) throw new UsageError(`--address: "${s}" is not an IP address`);
    return c;
  });
  const expiresMs = o.expires ? Date.now() + parseDuration(o.expires, '--expires') : null;
  const reserved = reservedByMeshInvites(file);
  const { roster, result } = await editRoster(file, (doc, now) => {
    const next = addMember(doc, { name: o.name, publicKey: pub, groups: groupsOf(o.groups), addresses: addresses ?? freeMemberAddresses(doc, reserved), expiresMs, endpoint: o.endpoint ?? null }, now);
    return { doc: next, result: next.members[next.members.length - 1] };
  });
  return { name: result.name, publicKey: keyToBase64(result.publicKey), addresses: result.addresses.map(formatCidr), groups: result.groups, serial: roster.serial, published: await publishRoster(file, roster) };
}

export async function meshRemove(file: string, who: string): Promise<{ name: string; publicKey: string; serial: number; published: PublishResult; warning: string | null }> {
  const cfg = loadConfig(file);
  const { roster, result } = await editRoster(file, (doc, now) => {
    const r = removeMember(doc, who, now);
    if (keyId(r.removed.publicKey) === keyId(publicKeyOf(cfg.iface.privateKey))) throw new ConfigError(`"${r.removed.name}" is this host, the admin host: it cannot remove itself`);
    return { doc: r.doc, result: r.removed };
  });
  return { name: result.name, publicKey: keyToBase64(result.publicKey), serial: roster.serial, published: await publishRoster(file, roster), warning: policyWarning(roster) };
}

/**
 * A removal (or a group change) is never refused for the policy's sake (removing a compromised host
 * must not wait for a policy edit), but a rule left naming nobody is said at once.
 */
function policyWarning(r: Roster): string | null {
  const bad = r.policy ? checkPolicy(r.policy, r) : null;
  return bad ? `the access policy's ${bad} (it matches nobody now; fix it with meshd mesh policy)` : null;
}

/** Reads a policy file: JSON of the shape {"rules": [...]}; a one-line error naming the file otherwise. */
export function readPolicyFile(path: string): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${path}: not JSON (${(err as Error).message})`);
  }
  try {
    return parsePolicy(json);
  } catch (err) {
    throw new ConfigError(`${path}: ${(err as Error).message}`);
  }
}

/** meshd mesh policy CONFIG FILE (or null: --clear): the roster's access policy, signed and published. */
export async function meshPolicy(file: string, policyFile: string | null): Promise<{ rules: number; serial: number; published: PublishResult }> {
  const policy = policyFile === null ? null : readPolicyFile(policyFile);
  const { roster } = await editRoster(file, (doc, now) => {
    try {
      return { doc: setPolicy(doc, policy, now), result: null };
    } catch (err) {
      throw new ConfigError(`${policyFile}: ${(err as Error).message}`);
    }
  });
  return { rules: roster.policy?.rules.length ?? 0, serial: roster.serial, published: await publishRoster(file, roster) };
}

/** The policy the admin host's roster carries (meshd mesh policy CONFIG with no file). */
export function meshPolicyShow(file: string): Policy {
  const cfg = loadConfig(file);
  if (!cfg.iface.meshKey) throw new ConfigError(`${file}: not in a mesh (no MeshKey)`);
  const r = readCachedRoster(cfg);
  if (!r) throw new MeshdError('ENOROSTER', `${rosterFile(file)}: no roster yet`);
  return r.policy ?? { rules: [] };
}

/** meshd mesh set CONFIG NAME --groups a,b: a member's groups. */
export async function meshSetGroups(file: string, who: string, groups: string): Promise<{ name: string; groups: string[]; serial: number; published: PublishResult; warning: string | null }> {
  const { roster, result } = await editRoster(file, (doc, now) => {
    const next = setGroups(doc, who, groupsOf(groups), now);
    return { doc: next, result: next.members.find((m) => m.name === who.toLowerCase() || keyToBase64(m.publicKey) === who)! };
  });
  return { name: result.name, groups: result.groups, serial: roster.serial, published: await publishRoster(file, roster), warning: policyWarning(roster) };
}

export interface PublishResult {
  /** "daemon": the running daemon took it (and publishes it); "relays": this command published it. */
  via: 'daemon' | 'relays' | 'none';
  relays: string[];
  error?: string;
}

/** Hands a newly signed roster on: to the running daemon, else straight to the config's relays. */
export async function publishRoster(file: string, roster: Roster): Promise<PublishResult> {
  const cfg = loadConfig(file);
  if (existsSync(controlSocketPath(cfg.interfaceName))) {
    try {
      const r = (await controlRequest(cfg.interfaceName, { cmd: 'roster' }, 10_000)) as { ok: boolean; serial?: number; reason?: string };
      if (r.ok || r.reason === 'roster-stale') return { via: 'daemon', relays: cfg.iface.relays };
      return { via: 'none', relays: [], error: `the daemon refused it: ${r.reason}` };
    } catch {
      // no daemon after all: publish directly
    }
  }
  const ok = await publishDirect(cfg, roster, 10_000);
  return { via: ok.length ? 'relays' : 'none', relays: ok, ...(ok.length ? {} : { error: cfg.iface.relays.length ? 'no relay took it (is one reachable?)' : 'no Relay in the config' }) };
}

/** Connects to each relay as this host, publishes, and waits until the relay says it holds the serial. */
export async function publishDirect(cfg: MeshConfig, roster: Roster, timeoutMs: number): Promise<string[]> {
  const log = createLogger(process.env.MESHD_LOG_LEVEL ?? 'error');
  const meshKey = cfg.iface.meshKey!;
  const priv = cfg.iface.privateKey;
  const done: string[] = [];
  await Promise.all(
    cfg.iface.relays.map(
      (url) =>
        new Promise<void>((resolve) => {
          const c = new RelayClient(url, () => ({ privateKey: priv, publicKey: publicKeyOf(priv) }), cfg.iface.relayCa ?? undefined, {
            onPacket: () => {},
            onStateChange: (rc) => {
              if (rc.connected && !rc.publish(meshKey, roster.signed)) finish();
            },
            onRosterHeld: (k, serial) => {
              if (keyId(k) === keyId(meshKey) && serial >= roster.serial) {
                done.push(url);
                finish();
              }
            },
          }, log);
          const timer = setTimeout(() => finish(), timeoutMs);
          function finish(): void {
            clearTimeout(timer);
            c.stop();
            resolve();
          }
          c.start();
        }),
    ),
  );
  return done;
}

/** Fetches a mesh's roster from its relays (meshd join): the first valid one, or null. */
export async function fetchRoster(cfg: MeshConfig, timeoutMs: number): Promise<Roster | null> {
  const log = createLogger(process.env.MESHD_LOG_LEVEL ?? 'error');
  const meshKey = cfg.iface.meshKey!;
  const priv = cfg.iface.privateKey;
  return new Promise((resolve) => {
    const clients: RelayClient[] = [];
    const finish = (r: Roster | null) => {
      clearTimeout(timer);
      for (const c of clients) c.stop();
      resolve(r);
    };
    const timer = setTimeout(() => finish(null), timeoutMs);
    for (const url of cfg.iface.relays) {
      const c = new RelayClient(url, () => ({ privateKey: priv, publicKey: publicKeyOf(priv) }), cfg.iface.relayCa ?? undefined, {
        onPacket: () => {},
        onStateChange: (rc) => {
          if (rc.connected) rc.subscribe(meshKey, 0);
        },
        onRoster: (k, signed) => {
          if (keyId(k) !== keyId(meshKey)) return;
          const r = checkRoster(signed, meshKey, 0);
          if (r.ok) finish(r.roster);
        },
      }, log);
      clients.push(c);
      c.start();
    }
  });
}

export interface ListedMember {
  name: string;
  /** NAME.DOMAIN, as the mesh's name servers answer it. */
  dnsName: string;
  publicKey: string;
  addresses: string[];
  groups: string[];
  expires: number | null;
  self: boolean;
  /** From the running daemon: its path and latest handshake (null: not running, or this host). */
  online: boolean | null;
  path: DaemonStatus['peers'][number]['path'] | null;
  latestHandshake: number | null;
}

export interface MeshList {
  meshKey: string;
  serial: number;
  issued: number;
  domain: string;
  running: boolean;
  members: ListedMember[];
  pending: { name: string; publicKey: string; expires: number }[];
  rejected: Record<string, number> | null;
}

/** meshd mesh list: the roster a host runs, with the daemon's live view of each member. */
export async function meshList(cfg: MeshConfig | null, iface: string): Promise<MeshList> {
  let live: DaemonStatus | null = null;
  let listing: MeshListing | null = null;
  if (existsSync(controlSocketPath(iface))) {
    live = (await controlRequest(iface, { cmd: 'status' }).catch(() => null)) as DaemonStatus | null;
    listing = (await controlRequest(iface, { cmd: 'mesh' }).catch(() => null)) as MeshListing | null;
  }
  if (listing && listing.serial === 0) throw new MeshdError('ENOROSTER', `the daemon on ${iface} has no roster yet (no relay has sent one, and none was cached)`);
  let roster: Roster | null = null;
  if (!listing) {
    if (!cfg) throw new MeshdError('ENODAEMON', `no meshd daemon runs ${iface}: give the config file to read its cached roster`);
    roster = readCachedRoster(cfg);
    if (!roster) throw new MeshdError('ENOROSTER', `${rosterFile(cfg.file)}: no roster yet (start the daemon so it fetches one)`);
  }
  const selfKey = live?.publicKey ?? (cfg ? keyToBase64(publicKeyOf(cfg.iface.privateKey)) : '');
  const members = listing
    ? listing.members
    : roster!.members.map((m) => ({ name: m.name, publicKey: keyToBase64(m.publicKey), addresses: m.addresses.map(formatCidr), groups: m.groups, expires: m.expiresMs }));
  return {
    meshKey: listing?.meshKey ?? meshKeyToBase64(roster!.meshKey),
    serial: listing?.serial ?? roster!.serial,
    issued: listing?.issued ?? roster!.issuedMs,
    domain: listing?.domain ?? roster!.domain,
    running: live !== null,
    rejected: live?.mesh?.rejected ?? null,
    pending: listing?.pending ?? roster!.pending.map((p) => ({ name: p.name, publicKey: keyToBase64(p.key), expires: p.expiresMs })),
    members: members.map((m) => {
      const self = m.publicKey === selfKey;
      const p = live?.peers.find((q) => q.publicKey === m.publicKey);
      const fresh = p?.latestHandshake ? Date.now() - p.latestHandshake < 180_000 : false;
      return { ...m, dnsName: `${m.name}.${listing?.domain ?? roster!.domain}`, self, online: live && !self ? fresh : null, path: p && !self ? p.path : null, latestHandshake: p?.latestHandshake ?? null };
    }),
  };
}

export function formatMeshList(l: MeshList, nowMs: number): string {
  const out = [`mesh ${l.meshKey} (domain ${l.domain}): roster serial ${l.serial}, signed ${new Date(l.issued).toISOString()}, ${l.members.length} members${l.running ? '' : ' (daemon not running: no live state)'}`];
  for (const m of l.members) {
    const state = m.self
      ? 'this host'
      : !l.running
        ? '-'
        : `${m.online ? 'online' : 'offline'}${m.path ? `, ${m.path.kind === 'direct' ? `direct ${m.path.endpoint}` : m.path.kind === 'relay' ? `relay ${m.path.relay}` : 'no path'}` : ''}${m.latestHandshake ? `, handshake ${Math.round((nowMs - m.latestHandshake) / 1000)}s ago` : ''}`;
    out.push(`  ${`${m.name}.${l.domain}`.padEnd(24)} ${m.addresses.join(', ').padEnd(34)} ${(m.groups.join(',') || '-').padEnd(14)} ${state}${m.expires ? ` (expires ${new Date(m.expires).toISOString()})` : ''}`);
  }
  for (const p of l.pending) if (p.expires > nowMs) out.push(`  ${p.name.padEnd(16)} (invited, not joined yet; until ${new Date(p.expires).toISOString()})`);
  const refused = l.rejected ? Object.entries(l.rejected).filter(([, v]) => v > 0) : [];
  if (refused.length) out.push(`rosters refused: ${refused.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  return out.join('\n');
}
