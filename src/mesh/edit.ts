// The admin's edits of a roster document (pure): a new mesh, members added and removed, pending
// enrollments for invitations. Each edit returns the next document (serial + 1, issued now) or
// throws a one-line ConfigError naming what is wrong; the caller signs and writes it.
import { ConfigError } from '../errors.js';
import { keyId, keyToBase64, type NodePublicKey } from '../crypto/keys.js';
import type { MeshPublicKey } from '../crypto/ed25519.js';
import { firstFreeAddress } from '../config/allocate.js';
import { parseHostPort } from '../config/config.js';
import { cidrContains, formatCidr, parseCidr, type Cidr } from '../tunnel/cidr.js';
import { checkPolicy, type Policy } from './policy.js';
import { DEFAULT_DOMAIN, validGroupName, validMemberName, validateDoc, type PendingEnrollment, type RosterDoc, type RosterMember } from './roster.js';

export const DEFAULT_PREFIX_V4 = '100.64.0.0/10';

export interface NewMember {
  name: string;
  publicKey: NodePublicKey;
  groups?: string[];
  /** Chosen addresses (host prefixes); default: the lowest free one of each of the mesh's prefixes. */
  addresses?: Cidr[];
  expiresMs?: number | null;
  /** "host:port" where it can be reached directly, if it has a fixed one. */
  endpoint?: string | null;
  /** The invitation's enrollment key this member redeemed: its pending entry goes. */
  enrolledWith?: NodePublicKey;
}

export interface NewMesh {
  meshKey: MeshPublicKey;
  domain?: string;
  /** Default: 100.64.0.0/10. At most one IPv4 and one IPv6 prefix. */
  prefixes?: Cidr[];
  relays: string[];
  stun: string[];
  /** The admin host itself, the first member. */
  first: NewMember;
}

/** Serial 1: a mesh whose one member is the admin host. */
export function newRoster(m: NewMesh, nowMs: number): RosterDoc {
  const prefixes = m.prefixes?.length ? m.prefixes : [parseCidr(DEFAULT_PREFIX_V4)!];
  if (prefixes.filter((p) => p.version === 4).length > 1 || prefixes.filter((p) => p.version === 6).length > 1) {
    throw new ConfigError('a mesh has at most one IPv4 and one IPv6 prefix');
  }
  const empty: RosterDoc = { meshKey: m.meshKey, serial: 0, issuedMs: nowMs, domain: m.domain ?? DEFAULT_DOMAIN, prefixes, relays: m.relays, stun: m.stun, members: [], pending: [], policy: null };
  return addMember(empty, m.first, nowMs);
}

/** Adds a member; refuses a duplicate name, key or address, and an address outside the prefixes. */
export function addMember(doc: RosterDoc, m: NewMember, nowMs: number): RosterDoc {
  const name = m.name.toLowerCase();
  if (!validMemberName(name)) throw new ConfigError(`"${m.name}" is not a member name (letters, digits and inner hyphens, at most 63)`);
  if (doc.members.some((x) => x.name === name)) throw new ConfigError(`a member is already called "${name}"`);
  const byKey = doc.members.find((x) => keyId(x.publicKey) === keyId(m.publicKey));
  if (byKey) throw new ConfigError(`the key ${keyToBase64(m.publicKey)} is already member "${byKey.name}"`);
  const groups = [...new Set((m.groups ?? []).map((g) => g.toLowerCase()))];
  const badGroup = groups.find((g) => !validGroupName(g));
  if (badGroup !== undefined) throw new ConfigError(`"${badGroup}" is not a group name (letters, digits, "-" and "_", at most 64)`);
  const taken = doc.members.flatMap((x) => x.addresses);
  let addresses: Cidr[];
  if (m.addresses?.length) {
    addresses = m.addresses;
    for (const a of addresses) {
      if (a.bits !== (a.version === 4 ? 32 : 128)) throw new ConfigError(`${formatCidr(a)} is not a single address`);
      if (!doc.prefixes.some((p) => p.version === a.version && cidrContains(p, a))) throw new ConfigError(`${formatCidr(a)} is outside the mesh's prefixes (${doc.prefixes.map(formatCidr).join(', ')})`);
      const holder = doc.members.find((x) => x.addresses.some((y) => y.version === a.version && cidrContains(y, a)));
      if (holder) throw new ConfigError(`${formatCidr(a)} is member "${holder.name}"'s address`);
    }
  } else {
    addresses = doc.prefixes.map((p) => {
      const free = firstFreeAddress(p, taken);
      if (!free) throw new ConfigError(`no free address left in ${formatCidr(p)}`);
      return { ...free, bits: free.version === 4 ? 32 : 128 };
    });
  }
  if (m.endpoint && !parseHostPort(m.endpoint)) throw new ConfigError(`"${m.endpoint}" is not host:port`);
  const member: RosterMember = { name, publicKey: m.publicKey, addresses, groups, expiresMs: m.expiresMs ?? null, endpoint: m.endpoint ?? null };
  return next(doc, { members: [...doc.members, member], pending: doc.pending.filter((p) => keyId(p.key) !== keyId(m.publicKey) && !(m.enrolledWith && keyId(p.key) === keyId(m.enrolledWith))) }, nowMs);
}

/** Removes the member called `who` (or whose base64 key is `who`). */
export function removeMember(doc: RosterDoc, who: string, nowMs: number): { doc: RosterDoc; removed: RosterMember } {
  const removed = doc.members.find((x) => x.name === who.toLowerCase() || keyToBase64(x.publicKey) === who);
  if (!removed) throw new ConfigError(`no member "${who}" in the roster`);
  return { doc: next(doc, { members: doc.members.filter((x) => x !== removed) }, nowMs), removed };
}

/** Sets (or, with null, clears) the access policy; a rule naming an unknown member or group is refused. */
export function setPolicy(doc: RosterDoc, policy: Policy | null, nowMs: number): RosterDoc {
  if (policy) {
    const bad = checkPolicy(policy, doc);
    if (bad) throw new ConfigError(bad);
  }
  return next(doc, { policy: policy && policy.rules.length ? policy : null }, nowMs);
}

/** Replaces a member's groups. */
export function setGroups(doc: RosterDoc, who: string, groups: string[], nowMs: number): RosterDoc {
  const m = doc.members.find((x) => x.name === who.toLowerCase() || keyToBase64(x.publicKey) === who);
  if (!m) throw new ConfigError(`no member "${who}" in the roster`);
  const gs = [...new Set(groups.map((g) => g.toLowerCase()))];
  const badGroup = gs.find((g) => !validGroupName(g));
  if (badGroup !== undefined) throw new ConfigError(`"${badGroup}" is not a group name (letters, digits, "-" and "_", at most 64)`);
  return next(doc, { members: doc.members.map((x) => (x === m ? { ...x, groups: gs } : x)) }, nowMs);
}

/** Drops a pending enrollment (an invitation withdrawn or expired). */
export function removePending(doc: RosterDoc, key: NodePublicKey, nowMs: number): RosterDoc {
  return next(doc, { pending: doc.pending.filter((p) => keyId(p.key) !== keyId(key)) }, nowMs);
}

/** Lists an invitation's enrollment key, so a relay admitting only members lets its redeem through. */
export function addPending(doc: RosterDoc, p: PendingEnrollment, nowMs: number): RosterDoc {
  if (doc.members.some((x) => x.name === p.name) || doc.pending.some((x) => x.name === p.name && x.expiresMs > nowMs)) {
    throw new ConfigError(`a member or a pending invitation is already called "${p.name}"`);
  }
  return next(doc, { pending: [...doc.pending.filter((x) => x.expiresMs > nowMs), p] }, nowMs);
}

function next(doc: RosterDoc, change: Partial<RosterDoc>, nowMs: number): RosterDoc {
  const d: RosterDoc = { ...doc, ...change, serial: doc.serial + 1, issuedMs: Math.max(nowMs, doc.issuedMs) };
  const bad = validateDoc(d);
  if (bad) throw new ConfigError(bad);
  return d;
}
