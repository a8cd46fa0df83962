// The signed roster (DESIGN.md §9): one document that says who is in a mesh, signed with the mesh
// key. Pure: bytes, the pinned mesh key and the highest serial accepted so far go in; an accepted
// roster or a counted reason comes out. Nothing is re-encoded before it is checked.
//
// Signed roster (big-endian):
//   offset  size  field
//   0       4     magic "MSHR"
//   4       1     format version (1)
//   5       4     document length N
//   9       N     document: UTF-8 JSON (below)
//   9+N     64    Ed25519 signature by the mesh key over CONTEXT ‖ document
//   (nothing may follow)
//
// Document: { "v": 1, "mesh": base64 mesh public key, "domain": "mesh", "prefixes": ["100.64.0.0/10",
// …], "relays": [url…], "stun": ["host:port"…], "members": [{ "name", "key": base64 X25519,
// "addresses": ["100.64.0.1/32", …], "groups": [...], "expires"?: ms, "endpoint"?: "host:port" }], "pending": [{ "key": base64
// enrollment key, "name", "expires": ms, "inviter": base64 X25519 key of the host that redeems it }], "serial": integer ≥ 1, "issued": ms since the epoch }
// (one member per line: see encodeRosterDoc).
// Unknown fields are ignored, so later versions can add to it (the access policy, DESIGN.md §10).
import { keyId, type NodePublicKey } from '../crypto/keys.js';
import { ED25519_KEY_LEN, ED25519_SIGNATURE_LEN, signEd25519, verifyEd25519, type MeshPrivateKey, type MeshPublicKey } from '../crypto/ed25519.js';
import { cidrContains, formatCidr, parseCidr, type Cidr } from '../tunnel/cidr.js';
import { parseHostPort } from '../config/config.js';
import { validDomain } from '../config/domain.js';
import { parsePolicy, parsePort, type Policy } from './policy.js';

export const ROSTER_MAGIC = Uint8Array.from([0x4d, 0x53, 0x48, 0x52]); // "MSHR"
export const ROSTER_FORMAT_VERSION = 1;
export const ROSTER_HEADER_LEN = 9;
/** What the signature covers besides the document: a signature over a roster is good for nothing else. */
export const ROSTER_SIGNATURE_CONTEXT = new TextEncoder().encode('meshd roster v1\0');
/** The largest signed roster accepted: 10,000 members take about 2.4 MB. */
export const MAX_ROSTER_BYTES = 8 * 1024 * 1024;
export const MAX_MEMBERS = 20_000;
export const MAX_GROUPS_PER_MEMBER = 32;
export const MAX_ADDRESSES_PER_MEMBER = 8;
export const DEFAULT_DOMAIN = 'mesh';

export const ROSTER_REJECT_REASONS = ['roster-oversized', 'roster-malformed', 'roster-bad-signature', 'roster-wrong-mesh', 'roster-stale', 'roster-invalid'] as const;
export type RosterRejectReason = (typeof ROSTER_REJECT_REASONS)[number];

export interface RosterMember {
  name: string;
  publicKey: NodePublicKey;
  /** Host prefixes (/32, /128) inside the roster's prefixes. */
  addresses: Cidr[];
  groups: string[];
  /** Wall-clock ms after which the member is no longer one, or null. */
  expiresMs: number | null;
  /** Where the member can be reached directly ("host:port", e.g. a server's public address), or null. */
  endpoint: string | null;
}

export interface PendingEnrollment {
  /** The invitation's one-time enrollment key (X25519): may reach the admin host to redeem. */
  key: NodePublicKey;
  name: string;
  expiresMs: number;
  /** The host that redeems it (the admin host): the only key the enrollment key may send to. */
  inviter: NodePublicKey;
}

export interface RosterDoc {
  meshKey: MeshPublicKey;
  serial: number;
  issuedMs: number;
  domain: string;
  prefixes: Cidr[];
  relays: string[];
  stun: string[];
  members: RosterMember[];
  pending: PendingEnrollment[];
  /** The access policy (DESIGN.md §10; src/mesh/policy.ts), or null: everyone reaches everyone. */
  policy: Policy | null;
}

/** A roster that passed every check, with the exact bytes it came as (to store and pass on). */
export interface Roster extends RosterDoc {
  readonly signed: Uint8Array;
}

export type RosterCheck = { ok: true; roster: Roster } | { ok: false; reason: RosterRejectReason; detail: string };

const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const GROUP = /^[a-z0-9][a-z0-9_-]{0,63}$/;
const B64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Whether `s` can be a member name: a DNS label (lower case letters, digits, inner hyphens). */
export function validMemberName(s: string): boolean {
  return NAME.test(s);
}

export function validGroupName(s: string): boolean {
  return GROUP.test(s);
}

const b64 = (k: Uint8Array): string => Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('base64');

/**
 * The document's JSON bytes (what is signed). One member per line, and the fields that change on
 * every edit (serial, issue time) on the last line: an edit then touches only the lines of the
 * members it changes and that last one, so a later version of the carriers can send a change as a
 * line delta against the roster a host already holds (10,000 members are ~1.2 MB) and the host
 * re-checks the whole signed result.
 */
export function encodeRosterDoc(d: RosterDoc): Uint8Array {
  const head = JSON.stringify({ v: 1, mesh: b64(d.meshKey), domain: d.domain, prefixes: d.prefixes.map(formatCidr), relays: d.relays, stun: d.stun, ...(d.policy ? { policy: d.policy } : {}) }).slice(0, -1);
  const member = (m: RosterMember): string =>
    JSON.stringify({ name: m.name, key: b64(m.publicKey), addresses: m.addresses.map(formatCidr), groups: m.groups, ...(m.expiresMs !== null ? { expires: m.expiresMs } : {}), ...(m.endpoint !== null ? { endpoint: m.endpoint } : {}) });
  const pending = d.pending.map((p) => JSON.stringify({ key: b64(p.key), name: p.name, expires: p.expiresMs, inviter: b64(p.inviter) }));
  const lines = [
    `${head},`,
    '"members":[',
    d.members.map(member).join(',\n'),
    '],"pending":[',
    pending.join(',\n'),
    `],"serial":${d.serial},"issued":${d.issuedMs}}`,
  ];
  return new TextEncoder().encode(lines.join('\n'));
}

/** Signs a document: the signed roster's bytes. */
export function signRoster(doc: RosterDoc, priv: MeshPrivateKey): Uint8Array {
  const body = encodeRosterDoc(doc);
  const out = new Uint8Array(ROSTER_HEADER_LEN + body.length + ED25519_SIGNATURE_LEN);
  out.set(ROSTER_MAGIC, 0);
  out[4] = ROSTER_FORMAT_VERSION;
  new DataView(out.buffer).setUint32(5, body.length);
  out.set(body, ROSTER_HEADER_LEN);
  out.set(signEd25519(priv, concat(ROSTER_SIGNATURE_CONTEXT, body)), ROSTER_HEADER_LEN + body.length);
  return out;
}

/**
 * Checks a signed roster against the pinned mesh key and the highest serial accepted before
 * (0: none). Size and framing first; then the signature — a document that names another mesh is
 * told apart from a forgery by checking it under the key it names, and nothing of an unsigned
 * document is used; then serial and contents.
 */
export function checkRoster(bytes: Uint8Array, meshKey: MeshPublicKey, lastSerial: number): RosterCheck {
  const no = (reason: RosterRejectReason, detail: string): RosterCheck => ({ ok: false, reason, detail });
  if (bytes.length > MAX_ROSTER_BYTES) return no('roster-oversized', `${bytes.length} bytes, the limit is ${MAX_ROSTER_BYTES}`);
  if (bytes.length < ROSTER_HEADER_LEN + ED25519_SIGNATURE_LEN) return no('roster-malformed', 'shorter than a header and a signature');
  for (let i = 0; i < 4; i++) if (bytes[i] !== ROSTER_MAGIC[i]) return no('roster-malformed', 'not a roster (bad magic)');
  if (bytes[4] !== ROSTER_FORMAT_VERSION) return no('roster-malformed', `format version ${bytes[4]}`);
  const len = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(5);
  if (ROSTER_HEADER_LEN + len + ED25519_SIGNATURE_LEN !== bytes.length) return no('roster-malformed', 'length does not match');
  const body = bytes.subarray(ROSTER_HEADER_LEN, ROSTER_HEADER_LEN + len);
  const sig = bytes.subarray(ROSTER_HEADER_LEN + len);
  const signed = concat(ROSTER_SIGNATURE_CONTEXT, body);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    return verifyEd25519(meshKey, signed, sig) ? no('roster-malformed', 'the document is not JSON') : no('roster-bad-signature', 'not signed by this mesh key');
  }
  const claimed = isObject(json) ? key(json.mesh) : null;
  if (claimed && !bytesEqual(claimed, meshKey)) {
    return verifyEd25519(claimed, signed, sig) ? no('roster-wrong-mesh', 'a roster of another mesh') : no('roster-bad-signature', 'signed by neither this mesh key nor the one it names');
  }
  if (!verifyEd25519(meshKey, signed, sig)) return no('roster-bad-signature', 'not signed by this mesh key');
  const parsed = parseDoc(json);
  if (typeof parsed === 'string') return no('roster-invalid', parsed);
  if (parsed.serial <= lastSerial) return no('roster-stale', `serial ${parsed.serial}, already have ${lastSerial}`);
  const bad = validateDoc(parsed);
  if (bad) return no('roster-invalid', bad);
  return { ok: true, roster: { ...parsed, signed: Uint8Array.from(bytes) } };
}

/**
 * The serial a signed roster claims, read from its last line without parsing or verifying anything
 * (NaN if none). Only for refusing early what is stale whatever its signature: a roster that claims
 * a serial at or below the one held is refused either way, and a lie the other way fails checkRoster.
 */
export function claimedSerial(bytes: Uint8Array): number {
  if (bytes.length < ROSTER_HEADER_LEN + ED25519_SIGNATURE_LEN) return NaN;
  const end = bytes.length - ED25519_SIGNATURE_LEN;
  const tail = new TextDecoder().decode(bytes.subarray(Math.max(ROSTER_HEADER_LEN, end - 80), end));
  const m = /"serial":(\d{1,16}),"issued":-?\d+(\.\d+)?\}$/.exec(tail);
  return m ? Number(m[1]) : NaN;
}

/** Members whose expiry has not passed at `nowMs`. */
export function activeMembers(r: RosterDoc, nowMs: number): RosterMember[] {
  return r.members.filter((m) => m.expiresMs === null || m.expiresMs > nowMs);
}

/** Consistency rules for a document (the admin's edits and every receiver apply the same), or null. */
export function validateDoc(d: RosterDoc): string | null {
  if (!Number.isSafeInteger(d.serial) || d.serial < 1) return 'serial must be a positive integer';
  if (!validDomain(d.domain)) return `"${d.domain}" is not a domain name`;
  if (d.members.length > MAX_MEMBERS) return `${d.members.length} members, the limit is ${MAX_MEMBERS}`;
  const names = new Set<string>();
  const keys = new Set<string>();
  const addrs = new Map<string, string>();
  for (const m of d.members) {
    if (!validMemberName(m.name)) return `member name "${m.name}" is not a DNS label`;
    if (names.has(m.name)) return `two members are called "${m.name}"`;
    names.add(m.name);
    const k = keyId(m.publicKey);
    if (keys.has(k)) return `member "${m.name}" has the key of another member`;
    keys.add(k);
    if (m.addresses.length === 0 || m.addresses.length > MAX_ADDRESSES_PER_MEMBER) return `member "${m.name}" has ${m.addresses.length} addresses`;
    for (const a of m.addresses) {
      if (a.bits !== (a.version === 4 ? 32 : 128)) return `member "${m.name}": ${formatCidr(a)} is not a host address`;
      if (!d.prefixes.some((p) => p.version === a.version && cidrContains(p, a))) return `member "${m.name}": ${formatCidr(a)} is outside the mesh's prefixes`;
      const s = formatCidr(a);
      const other = addrs.get(s);
      if (other) return `members "${other}" and "${m.name}" both have ${s}`;
      addrs.set(s, m.name);
    }
    if (m.groups.length > MAX_GROUPS_PER_MEMBER || !m.groups.every(validGroupName)) return `member "${m.name}" has a bad group list`;
  }
  for (const [i, r] of (d.policy?.rules ?? []).entries()) {
    const bad = r.ports.find((x) => !parsePort(x));
    if (bad !== undefined) return `policy rule ${i + 1}: bad port "${bad}"`;
  }
  return null;
}

function parseDoc(j: unknown): RosterDoc | string {
  if (!isObject(j)) return 'the document is not an object';
  if (j.v !== 1) return `document version ${String(j.v)}`;
  const meshKey = key(j.mesh);
  if (!meshKey) return 'no mesh key';
  if (typeof j.serial !== 'number' || !Number.isSafeInteger(j.serial)) return 'no serial';
  if (typeof j.issued !== 'number' || !Number.isFinite(j.issued)) return 'no issue time';
  const domain = typeof j.domain === 'string' ? j.domain : '';
  const prefixes = cidrs(j.prefixes);
  if (!prefixes || prefixes.length === 0) return 'no address prefixes';
  const relays = strings(j.relays);
  const stun = strings(j.stun);
  if (!relays || !stun) return 'bad relay or STUN list';
  if (!Array.isArray(j.members)) return 'no member list';
  const members: RosterMember[] = [];
  for (const m of j.members) {
    if (!isObject(m) || typeof m.name !== 'string') return 'a member without a name';
    const publicKey = key(m.key) as NodePublicKey | null;
    const addresses = cidrs(m.addresses);
    const groups = m.groups === undefined ? [] : strings(m.groups);
    if (!publicKey || !addresses || !groups) return `member "${m.name}" is malformed`;
    if (m.expires !== undefined && (typeof m.expires !== 'number' || !Number.isFinite(m.expires))) return `member "${m.name}" has a bad expiry`;
    if (m.endpoint !== undefined && (typeof m.endpoint !== 'string' || !parseHostPort(m.endpoint))) return `member "${m.name}" has a bad endpoint`;
    members.push({ name: m.name, publicKey, addresses, groups, expiresMs: typeof m.expires === 'number' ? m.expires : null, endpoint: typeof m.endpoint === 'string' ? m.endpoint : null });
  }
  const pending: PendingEnrollment[] = [];
  if (j.pending !== undefined) {
    if (!Array.isArray(j.pending)) return 'bad pending list';
    for (const p of j.pending) {
      const k = isObject(p) ? (key(p.key) as NodePublicKey | null) : null;
      const inviter = isObject(p) ? (key(p.inviter) as NodePublicKey | null) : null;
      if (!isObject(p) || !k || !inviter || typeof p.name !== 'string' || typeof p.expires !== 'number') return 'a malformed pending enrollment';
      pending.push({ key: k, name: p.name, expiresMs: p.expires, inviter });
    }
  }
  let policy: Policy | null = null;
  if (j.policy !== undefined) {
    try {
      policy = parsePolicy(j.policy);
    } catch (err) {
      return `bad policy: ${(err as Error).message}`;
    }
  }
  return { meshKey: meshKey as MeshPublicKey, serial: j.serial, issuedMs: j.issued, domain, prefixes, relays, stun, members, pending, policy };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function key(v: unknown): Uint8Array | null {
  if (typeof v !== 'string' || !B64_KEY.test(v)) return null;
  const b = new Uint8Array(Buffer.from(v, 'base64'));
  return b.length === ED25519_KEY_LEN ? b : null;
}

function strings(v: unknown): string[] | null {
  return Array.isArray(v) && v.every((s) => typeof s === 'string') ? (v as string[]) : null;
}

function cidrs(v: unknown): Cidr[] | null {
  const s = strings(v);
  if (!s) return null;
  const out: Cidr[] = [];
  for (const x of s) {
    const c = parseCidr(x);
    if (!c) return null;
    out.push(c);
  }
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
