// A daemon's side of the signed roster (DESIGN.md §9): which roster it runs, checked under its
// MeshKey with a serial higher than any it accepted before (the cache beside the config keeps that
// across restarts); the members it turns into peers, applied as a difference; the relays it tells
// of a newer roster than they hold. Anything refused is counted by reason, logged once at warn, and
// changes nothing.
import { existsSync, readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { keyId, keyToBase64 } from '../crypto/keys.js';
import type { MeshPublicKey } from '../crypto/ed25519.js';
import { writeFileAtomic } from '../config/write.js';
import { applyDelta, deltaBaseSerial, makeDelta } from '../mesh/delta.js';
import { DISCO_MAX_DELTA_BYTES } from '../wire/disco.js';
import { buildZone, type NameZone } from '../mesh/names.js';
import { activeMembers, checkRoster, MAX_ROSTER_BYTES, ROSTER_REJECT_REASONS, type Roster, type RosterMember, type RosterRejectReason } from '../mesh/roster.js';
import { formatCidr } from '../tunnel/cidr.js';
import type { Device } from '../tunnel/device.js';
import type { Endpoint } from '../tunnel/endpoint.js';

/** A relay that holds an older roster is sent ours again at most this often (it may be rate limiting). */
export const REPUBLISH_INTERVAL_MS = 2_000;
/** Earlier rosters kept, so a peer a few serials behind can be sent a delta over disco. */
export const ROSTER_HISTORY = 4;
/** A peer that is behind is sent the same delta at most this often (its answer may be lost). */
export const PEER_DELTA_INTERVAL_MS = 5_000;

export interface MembershipStatus {
  meshKey: string;
  serial: number;
  issued: number | null;
  domain: string | null;
  members: number;
  /** Members the roster lists whose expiry has passed (not peers, refused like strangers). */
  expiredMembers: number;
  /** Rosters refused, by reason. */
  rejected: Record<string, number>;
  /** Serial each relay said it holds. */
  relays: Record<string, number>;
}

/** The roster as `meshd mesh list` shows it. */
export interface MeshListing {
  meshKey: string;
  serial: number;
  issued: number | null;
  domain: string | null;
  members: { name: string; publicKey: string; addresses: string[]; groups: string[]; expires: number | null }[];
  pending: { name: string; publicKey: string; expires: number }[];
}

export interface MembershipHost {
  device: Device;
  log: Logger;
  /** Keys of the config's own [Peer] sections: they stay as configured, whatever the roster says. */
  staticKeys(): Set<string>;
  /** Routes follow the device's AllowedIPs (after members were added or removed). */
  reconcileRoutes(): Promise<void>;
  /** A member's "host:port" as an endpoint (null: it does not resolve now). */
  resolve(hostPort: string): Promise<Endpoint | null>;
  /** Sends a signed roster to the relay with this URL (false: it cannot take it now). */
  publish(url: string, signed: Uint8Array): boolean;
  /** After each apply: the roster's access policy and names as this host (`self`: its member entry, null if it is none) uses them. */
  rosterApplied(r: Roster, self: RosterMember | null, nowMs: number): Promise<void>;
  flush(): void;
}

export class Membership {
  roster: Roster | null = null;
  private readonly rejected = new Map<RosterRejectReason, number>();
  private readonly warned = new Set<RosterRejectReason>();
  private expiredMembers = 0;
  /** The names the roster gives (rebuilt after each apply: new roster or expiry). */
  private zoneCache: NameZone | null = null;
  /** Key ids of the peers that came from the roster (and are not static peers). */
  private readonly applied = new Map<string, RosterMember>();
  private readonly relaySerial = new Map<string, number>();
  private readonly publishedAt = new Map<string, { serial: number; atMs: number }>();
  /** Earlier rosters (signed bytes), newest last, and the deltas from them to the one run. */
  private history: { serial: number; signed: Uint8Array }[] = [];
  private deltas = new Map<number, Uint8Array>();
  /** Peer id → the delta serial last sent to it, and when. */
  private readonly peerDeltaSent = new Map<string, { serial: number; atMs: number }>();
  /** Applying one roster at a time: a newer one waits for the one being applied. */
  private applying: Promise<void> = Promise.resolve();

  constructor(
    readonly meshKey: MeshPublicKey,
    private readonly cacheFile: string,
    private readonly host: MembershipHost,
  ) {}

  get serial(): number {
    return this.roster?.serial ?? 0;
  }

  /** The cached roster, if there is a valid one (read at start, before any relay answers). */
  async start(): Promise<void> {
    if (!existsSync(this.cacheFile)) return;
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(this.cacheFile));
    } catch (err) {
      this.host.log.warn({ component: 'mesh', file: this.cacheFile, err: (err as Error).message }, 'cannot read the cached roster');
      return;
    }
    const r = checkRoster(bytes, this.meshKey, 0);
    if (!r.ok) {
      this.host.log.warn({ component: 'mesh', file: this.cacheFile, reason: r.reason, detail: r.detail }, 'cached roster ignored');
      return;
    }
    await this.take(r.roster, 'cache', false);
  }

  /**
   * A signed roster from a relay, the admin CLI (through the cache file) or a peer. Returns the
   * serial now run, or the reason it was refused.
   */
  async offer(bytes: Uint8Array, from: string): Promise<{ ok: true; serial: number } | { ok: false; reason: RosterRejectReason; detail: string }> {
    await this.applying;
    const r = checkRoster(bytes, this.meshKey, this.serial);
    if (!r.ok) {
      // The same roster again (from a second relay, or a re-push) is not news.
      if (r.reason !== 'roster-stale' || !this.roster || !sameBytes(bytes, this.roster.signed)) this.refuse(r.reason, r.detail, from);
      return r;
    }
    await this.take(r.roster, from, true);
    return { ok: true, serial: r.roster.serial };
  }

  /**
   * A line delta from the roster we run: rebuilt into a signed roster and offered like any other.
   * False when it does not apply (we moved on, or it is damaged): the caller asks for the whole one.
   */
  async offerDelta(delta: Uint8Array, from: string): Promise<boolean> {
    await this.applying;
    const base = this.roster;
    if (!base) return false;
    if (deltaBaseSerial(delta) !== base.serial) return deltaBaseSerial(delta) < base.serial; // an old delta: nothing to do
    const bytes = applyDelta(base.signed, delta, MAX_ROSTER_BYTES);
    if (!bytes) {
      this.refuse('roster-malformed', 'a delta that does not apply', from);
      return false;
    }
    const r = await this.offer(bytes, from);
    return r.ok || r.reason === 'roster-stale';
  }

  /** The admin CLI wrote a newer roster into the cache file: take it. */
  async reloadCache(): Promise<{ ok: true; serial: number } | { ok: false; reason: RosterRejectReason; detail: string }> {
    return this.offer(new Uint8Array(readFileSync(this.cacheFile)), 'cache');
  }

  /** Counts a refused roster (also one its carrier could not deliver whole); warns once per reason. */
  refuse(reason: RosterRejectReason, detail: string, from: string): void {
    this.rejected.set(reason, (this.rejected.get(reason) ?? 0) + 1);
    if (!this.warned.has(reason)) {
      this.warned.add(reason);
      this.host.log.warn({ component: 'mesh', reason, from, detail }, 'roster refused (further refusals for this reason are only counted)');
    }
  }

  private take(r: Roster, from: string, persist: boolean): Promise<void> {
    const run = this.applying.then(async () => {
      if (persist) writeFileAtomic(this.cacheFile, r.signed);
      const before = this.serial;
      if (this.roster) this.history = [...this.history, { serial: this.roster.serial, signed: this.roster.signed }].slice(-ROSTER_HISTORY);
      this.deltas = new Map();
      this.roster = r;
      if (/^wss?:/.test(from)) this.relaySerial.set(from, Math.max(this.relaySerial.get(from) ?? 0, r.serial));
      const change = await this.apply(Date.now());
      this.host.log.info({ component: 'mesh', serial: r.serial, previous: before, from, members: r.members.length, ...change }, 'roster applied');
      this.publishWhereOlder();
    });
    this.applying = run.catch((err: Error) => this.host.log.error({ component: 'mesh', err: err.message }, 'roster could not be applied'));
    return this.applying;
  }

  /**
   * Makes the device's roster peers match the roster's active members (not this host, not the
   * config's static peers): new members become peers with their addresses as AllowedIPs, removed
   * and expired ones lose sessions, keys and routes, the rest keep theirs.
   */
  private async apply(nowMs: number): Promise<{ added: string[]; removed: string[]; changed: string[] }> {
    const d = this.host.device;
    const self = keyId(d.publicKey);
    const statics = this.host.staticKeys();
    const want = new Map<string, RosterMember>();
    const active = this.roster ? activeMembers(this.roster, nowMs) : [];
    this.expiredMembers = (this.roster?.members.length ?? 0) - active.length;
    this.zoneCache = null;
    for (const m of active) {
      const id = keyId(m.publicKey);
      if (id !== self && !statics.has(id)) want.set(id, m);
    }
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    for (const [id, m] of this.applied) {
      if (want.has(id)) continue;
      d.removePeer(id);
      this.applied.delete(id);
      removed.push(m.name);
    }
    for (const [id, m] of want) {
      const had = this.applied.get(id);
      const peer = d.peers.get(id);
      if (!had || !peer) {
        const endpoint = m.endpoint ? await this.host.resolve(m.endpoint) : null;
        d.addPeer({ publicKey: m.publicKey, presharedKey: null, endpoint, persistentKeepaliveSec: endpoint ? 25 : 0, name: m.name }, m.addresses);
        added.push(m.name);
      } else {
        if (had.endpoint !== m.endpoint && m.endpoint) {
          const endpoint = await this.host.resolve(m.endpoint);
          if (endpoint) d.setEndpoint(peer, endpoint);
        }
        if (had.addresses.map(formatCidr).join() !== m.addresses.map(formatCidr).join()) {
          d.allowedIps.removeValue(peer);
          for (const c of m.addresses) d.allowedIps.insert(c, peer);
          changed.push(m.name);
        }
        peer.name = m.name;
      }
      this.applied.set(id, m);
    }
    if (added.length || removed.length || changed.length) await this.host.reconcileRoutes();
    if (this.roster) await this.host.rosterApplied(this.roster, active.find((m) => keyId(m.publicKey) === self) ?? null, nowMs);
    this.host.flush();
    return { added, removed, changed };
  }

  /** Whether the config's static peers changed (reload): members they shadowed come back, and the reverse. */
  async staticPeersChanged(): Promise<void> {
    for (const id of this.host.staticKeys()) this.applied.delete(id);
    this.applying = this.applying.then(() => this.apply(Date.now()).then(() => undefined));
    await this.applying;
  }

  /** Once a second: members whose expiry passed go; relays behind us are offered ours again. */
  tick(nowMs: number): void {
    const r = this.roster;
    if (r) {
      for (const m of this.applied.values()) {
        if (m.expiresMs !== null && m.expiresMs <= nowMs) {
          this.applying = this.applying.then(() => this.apply(nowMs).then((c) => this.host.log.info({ component: 'mesh', ...c }, 'members expired')));
          break;
        }
      }
    }
    this.publishWhereOlder();
  }

  /** A relay (connected) told us the serial it holds. */
  relayHolds(url: string, serial: number): void {
    this.relaySerial.set(url, serial);
    this.publishWhereOlder();
  }

  relayLost(url: string): void {
    this.relaySerial.delete(url);
    this.publishedAt.delete(url);
  }

  /** Every relay that said it holds an older serial than ours gets ours (DESIGN.md §9: convergence). */
  private publishWhereOlder(): void {
    const r = this.roster;
    if (!r) return;
    const now = Date.now();
    for (const [url, serial] of this.relaySerial) {
      if (serial >= r.serial) continue;
      const last = this.publishedAt.get(url);
      if (last && last.serial === r.serial && now - last.atMs < REPUBLISH_INTERVAL_MS) continue;
      if (this.host.publish(url, r.signed)) {
        this.publishedAt.set(url, { serial: r.serial, atMs: now });
        this.host.log.info({ component: 'mesh', relay: url, serial: r.serial, relayHeld: serial }, 'roster published to a relay that held an older one');
      }
    }
  }

  /**
   * A peer said (in disco) that it runs roster `serial`: if that is older than ours and we still have
   * it, the delta to ours when it fits one disco message, at most every PEER_DELTA_INTERVAL_MS.
   */
  peerHolds(peerId: string, serial: number, nowMs: number): Uint8Array | null {
    const r = this.roster;
    if (!r || serial <= 0 || serial >= r.serial) return null;
    const last = this.peerDeltaSent.get(peerId);
    if (last && last.serial === r.serial && nowMs - last.atMs < PEER_DELTA_INTERVAL_MS) return null;
    let d = this.deltas.get(serial);
    if (!d) {
      const base = this.history.find((h) => h.serial === serial);
      if (!base) return null;
      d = makeDelta(base.signed, base.serial, r.signed);
      this.deltas.set(serial, d);
    }
    if (d.length > DISCO_MAX_DELTA_BYTES) return null;
    this.peerDeltaSent.set(peerId, { serial: r.serial, atMs: nowMs });
    return d;
  }

  /** NAME.DOMAIN → addresses of the active members, for the name server (null: no roster yet). */
  zone(): NameZone | null {
    if (!this.roster) return null;
    this.zoneCache ??= buildZone(this.roster, Date.now());
    return this.zoneCache;
  }

  /** The member's DNS name (NAME.DOMAIN), if the key is a member. */
  dnsNameOf(key: Uint8Array): string | null {
    const m = this.memberOf(key);
    return m && this.roster ? `${m.name}.${this.roster.domain}` : null;
  }

  /** The member a key belongs to, if the roster lists it. */
  memberOf(key: Uint8Array): RosterMember | undefined {
    const r = this.roster;
    if (!r) return undefined;
    if (this.byKey?.serial !== r.serial) this.byKey = { serial: r.serial, map: new Map(r.members.map((m) => [keyId(m.publicKey), m])) };
    return this.byKey.map.get(keyId(key));
  }
  private byKey: { serial: number; map: Map<string, RosterMember> } | null = null;

  listing(): MeshListing {
    const r = this.roster;
    return {
      meshKey: keyToBase64(this.meshKey),
      serial: this.serial,
      issued: r?.issuedMs ?? null,
      domain: r?.domain ?? null,
      members: (r?.members ?? []).map((m) => ({ name: m.name, publicKey: keyToBase64(m.publicKey), addresses: m.addresses.map(formatCidr), groups: m.groups, expires: m.expiresMs })),
      pending: (r?.pending ?? []).map((p) => ({ name: p.name, publicKey: keyToBase64(p.key), expires: p.expiresMs })),
    };
  }

  status(): MembershipStatus {
    const rejected: Record<string, number> = {};
    for (const reason of ROSTER_REJECT_REASONS) rejected[reason] = this.rejected.get(reason) ?? 0;
    return {
      meshKey: keyToBase64(this.meshKey),
      serial: this.serial,
      issued: this.roster?.issuedMs ?? null,
      domain: this.roster?.domain ?? null,
      members: this.roster?.members.length ?? 0,
      expiredMembers: this.expiredMembers,
      rejected,
      relays: Object.fromEntries(this.relaySerial),
    };
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
