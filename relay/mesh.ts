// The relay as a mesh's directory (DESIGN.md §9): for each mesh key it was started with, the newest
// valid roster it has seen — kept in --state-dir, so a restart serves it again — and who that
// roster admits. The signature is the authority: a roster from any client is taken if it checks
// under the mesh key and has a higher serial. The relay can withhold a roster, never forge one.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keyId } from '../src/crypto/keys.js';
import type { MeshPublicKey } from '../src/crypto/ed25519.js';
import { writeFileAtomic } from '../src/config/write.js';
import { checkRoster, claimedSerial, type Roster, type RosterRejectReason } from '../src/mesh/roster.js';
import { makeDelta } from '../src/mesh/delta.js';

/** Older rosters kept (in memory) per mesh, so a subscriber a few serials behind gets a delta. */
export const ROSTER_HISTORY = 4;

/** What a key may do on this relay. */
export type Admission =
  /** A member of a roster the relay holds: everything. */
  | { kind: 'member' }
  /** An invitation's enrollment key: it may send only to the hosts that redeem it (their key ids). */
  | { kind: 'pending'; inviters: Set<string> }
  /** A mesh has no roster here yet: any key may log in to subscribe and publish, and send nothing. */
  | { kind: 'bootstrap' }
  | null;

export type OfferResult = { ok: true; roster: Roster } | { ok: false; reason: RosterRejectReason | 'roster-unknown-mesh' };

interface Held {
  meshKey: MeshPublicKey;
  id: string;
  roster: Roster | null;
  /** key id → expiry (Infinity: none) of the active members. */
  members: Map<string, number>;
  /** enrollment key id → { inviter key id, expiry }. */
  pending: Map<string, { inviter: string; expiresMs: number }>;
  /** Earlier rosters, newest last (at most ROSTER_HISTORY), and deltas from them to the held one. */
  history: { serial: number; signed: Uint8Array }[];
  deltas: Map<number, Uint8Array>;
}

export class MeshDirectory {
  private readonly meshes = new Map<string, Held>();

  constructor(
    meshKeys: readonly MeshPublicKey[],
    private readonly stateDir: string | null,
  ) {
    for (const k of meshKeys) this.meshes.set(keyId(k), { meshKey: k, id: keyId(k), roster: null, members: new Map(), pending: new Map(), history: [], deltas: new Map() });
  }

  /** Reads the stored rosters (each is checked again: a damaged or foreign file is ignored, and said). */
  load(warn: (msg: string, fields: Record<string, unknown>) => void): void {
    if (!this.stateDir) return;
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
    for (const h of this.meshes.values()) {
      const f = this.file(h);
      if (!existsSync(f)) continue;
      const r = checkRoster(new Uint8Array(readFileSync(f)), h.meshKey, 0);
      if (r.ok) this.hold(h, r.roster);
      else warn('stored roster ignored', { file: f, reason: r.reason, detail: r.detail });
    }
  }

  get meshKeys(): MeshPublicKey[] {
    return [...this.meshes.values()].map((h) => h.meshKey);
  }

  /** Whether `meshKey` is one this relay carries. */
  carries(meshKey: Uint8Array): boolean {
    return this.meshes.has(keyId(meshKey));
  }

  roster(meshKey: Uint8Array): Roster | null {
    return this.meshes.get(keyId(meshKey))?.roster ?? null;
  }

  serial(meshKey: Uint8Array): number {
    return this.roster(meshKey)?.serial ?? 0;
  }

  /** What the key with id `id` may do now. */
  admission(id: string, nowMs: number): Admission {
    let inviters: Set<string> | null = null;
    let bootstrap = false;
    for (const h of this.meshes.values()) {
      if (!h.roster) {
        bootstrap = true;
        continue;
      }
      const exp = h.members.get(id);
      if (exp !== undefined && exp > nowMs) return { kind: 'member' };
      const p = h.pending.get(id);
      if (p && p.expiresMs > nowMs) (inviters ??= new Set()).add(p.inviter);
    }
    if (inviters) return { kind: 'pending', inviters };
    return bootstrap ? { kind: 'bootstrap' } : null;
  }

  /** The earliest future time an admission can change by expiry alone (Infinity: never). */
  nextExpiryMs(nowMs: number): number {
    let next = Infinity;
    for (const h of this.meshes.values()) {
      for (const e of h.members.values()) if (e > nowMs && e < next) next = e;
      for (const p of h.pending.values()) if (p.expiresMs > nowMs && p.expiresMs < next) next = p.expiresMs;
    }
    return next;
  }

  /**
   * A roster a client sent: taken, stored and returned if it is valid and newer; else the reason.
   * A claimed serial at or below the held one is refused before any signature is checked.
   */
  offer(meshKey: Uint8Array, bytes: Uint8Array): OfferResult {
    const h = this.meshes.get(keyId(meshKey));
    if (!h) return { ok: false, reason: 'roster-unknown-mesh' };
    const held = h.roster?.serial ?? 0;
    const claimed = claimedSerial(bytes);
    if (Number.isFinite(claimed) && claimed <= held) return { ok: false, reason: 'roster-stale' };
    const r = checkRoster(bytes, h.meshKey, held);
    if (!r.ok) return { ok: false, reason: r.reason };
    if (this.stateDir) writeFileAtomic(this.file(h), r.roster.signed);
    this.hold(h, r.roster);
    return { ok: true, roster: r.roster };
  }

  /** The delta from serial `from` to the held roster, if the relay still has roster `from` (computed once). */
  delta(meshKey: Uint8Array, from: number): Uint8Array | null {
    const h = this.meshes.get(keyId(meshKey));
    if (!h?.roster || from >= h.roster.serial) return null;
    let d = h.deltas.get(from);
    if (!d) {
      const base = h.history.find((r) => r.serial === from);
      if (!base) return null;
      d = makeDelta(base.signed, base.serial, h.roster.signed);
      h.deltas.set(from, d);
    }
    return d;
  }

  private hold(h: Held, r: Roster): void {
    if (h.roster) h.history = [...h.history, { serial: h.roster.serial, signed: h.roster.signed }].slice(-ROSTER_HISTORY);
    h.deltas = new Map();
    h.roster = r;
    h.members = new Map(r.members.map((m) => [keyId(m.publicKey), m.expiresMs ?? Infinity]));
    h.pending = new Map(r.pending.map((p) => [keyId(p.key), { inviter: keyId(p.inviter), expiresMs: p.expiresMs }]));
  }

  private file(h: Held): string {
    return join(this.stateDir!, `${Buffer.from(h.meshKey).toString('base64url')}.roster`);
  }
}
