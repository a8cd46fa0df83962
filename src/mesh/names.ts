// Names from the roster (DESIGN.md §10): NAME.DOMAIN → the member's addresses (A, AAAA), and the
// reverse (PTR) for mesh addresses. Pure: a query's bytes and the zone in, the answer's bytes (or a
// counted reason) out. The wire format is dns-packet's (RFC 1035); nothing here touches a socket.
import dnsPacket from 'dns-packet';
import { cidrContains, formatIpAddr, maskBytes, parseIp, type Cidr } from '../tunnel/cidr.js';
import type { RosterDoc } from './roster.js';

/** Answers are cached this long: a roster change shows within seconds. */
export const NAME_TTL_SEC = 5;
/** Largest answer over UDP without EDNS (RFC 1035 §4.2.1); longer ones are truncated (TC), TCP has all. */
export const UDP_ANSWER_MAX = 512;

export interface NameZone {
  domain: string;
  /** lower-case member name → its addresses. */
  names: Map<string, { v4: string[]; v6: string[] }>;
  /** reverse name (x.y.z.w.in-addr.arpa, nibbles.ip6.arpa) → NAME.DOMAIN */
  reverse: Map<string, string>;
  prefixes: Cidr[];
}

export type NameDropReason = 'dns-malformed' | 'dns-not-query';

/** What a zone needs of a member: its name, addresses and expiry. */
export type NamedHost = Pick<RosterDoc['members'][number], 'name' | 'addresses' | 'expiresMs'>;

export function buildZone(r: Pick<RosterDoc, 'domain' | 'prefixes'> & { members: NamedHost[] }, activeAt: number | null = null): NameZone {
  const names = new Map<string, { v4: string[]; v6: string[] }>();
  const reverse = new Map<string, string>();
  for (const m of r.members) {
    if (activeAt !== null && m.expiresMs !== null && m.expiresMs <= activeAt) continue;
    const e = { v4: [] as string[], v6: [] as string[] };
    for (const a of m.addresses) {
      const ip = formatIpAddr(a);
      (a.version === 4 ? e.v4 : e.v6).push(ip);
      reverse.set(reverseName(a.version, a.bytes), `${m.name}.${r.domain}`);
    }
    names.set(m.name, e);
  }
  return { domain: r.domain.toLowerCase(), names, reverse, prefixes: r.prefixes };
}

/**
 * A static config's names (`Domain =` in [Interface]): each [Peer] with a Name that is a DNS label
 * (or dotted labels) resolves to the single addresses of its AllowedIPs; reverse names are answered
 * for the networks of the interface's own addresses.
 */
export function staticZone(domain: string, peers: { name: string | undefined; allowedIps: Cidr[] }[], ownAddresses: Cidr[]): NameZone {
  const hosts: NamedHost[] = [];
  for (const p of peers) {
    const name = p.name?.toLowerCase();
    if (!name || !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(name)) continue;
    const addresses = p.allowedIps.filter((c) => c.bits === (c.version === 4 ? 32 : 128));
    if (addresses.length) hosts.push({ name, addresses, expiresMs: null });
  }
  const prefixes = ownAddresses.map((a) => ({ ...a, bytes: maskBytes(a.bytes, a.bits) }));
  return buildZone({ domain, prefixes, members: hosts });
}

/** The in-addr.arpa / ip6.arpa name of an address. */
export function reverseName(version: 4 | 6, bytes: Uint8Array): string {
  if (version === 4) return `${[...bytes].reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (let i = bytes.length - 1; i >= 0; i--) nibbles.push((bytes[i] & 15).toString(16), (bytes[i] >> 4).toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}

/** The address a complete reverse name stands for, or null. */
function reverseAddress(name: string): { version: 4 | 6; bytes: Uint8Array } | null {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4) return null;
    const ip = parseIp(parts.reverse().join('.'));
    return ip && ip.version === 4 ? ip : null;
  }
  if (name.endsWith('.ip6.arpa')) {
    const n = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (n.length !== 32 || !n.every((x) => /^[0-9a-f]$/.test(x))) return null;
    const bytes = new Uint8Array(16);
    for (let i = 0; i < 16; i++) bytes[15 - i] = parseInt(n[2 * i], 16) | (parseInt(n[2 * i + 1], 16) << 4);
    return { version: 6, bytes };
  }
  return null;
}

export type NameAnswer = { ok: true; bytes: Uint8Array; rcode: string } | { ok: false; reason: NameDropReason };

/**
 * The answer to one query (`tcp`: no size limit). Names in the mesh's domain and reverse names of
 * its prefixes are answered with authority (NXDOMAIN for names no member has); anything else is
 * REFUSED: this server is authoritative for the mesh only and forwards nothing.
 */
export function answerQuery(query: Uint8Array, zone: NameZone | null, tcp: boolean): NameAnswer {
  // The header first, without the library: a query has QR 0, one question, no answers or authority,
  // and at most one additional record (EDNS). Random bytes almost never pass, so garbage costs a few
  // comparisons instead of a parse that allocates for made-up record counts.
  if (query.length < 12 + 5) return { ok: false, reason: 'dns-malformed' };
  if (query[2] & 0x80) return { ok: false, reason: 'dns-not-query' };
  const count = (i: number) => (query[i] << 8) | query[i + 1];
  if (count(4) !== 1 || count(6) !== 0 || count(8) !== 0 || count(10) > 1) return { ok: false, reason: 'dns-malformed' };
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(Buffer.from(query.buffer, query.byteOffset, query.byteLength));
  } catch {
    return { ok: false, reason: 'dns-malformed' };
  }
  if (q.type !== 'query') return { ok: false, reason: 'dns-not-query' };
  const rd = (q.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  const reply = (rcode: string, answers: dnsPacket.Answer[], authoritative: boolean): NameAnswer => {
    const flags = (authoritative ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | rd | rcodeBits(rcode);
    const out: dnsPacket.Packet = { type: 'response', id: q.id, flags, questions: q.questions, answers };
    let bytes: Buffer = dnsPacket.encode(out);
    if (!tcp && bytes.length > UDP_ANSWER_MAX) bytes = dnsPacket.encode({ ...out, answers: [], flags: flags | dnsPacket.TRUNCATED_RESPONSE });
    return { ok: true, bytes: new Uint8Array(bytes), rcode };
  };
  const question = q.questions?.[0];
  if (!question || (q.questions?.length ?? 0) !== 1 || (q as { opcode?: string }).opcode !== 'QUERY') return reply('FORMERR', [], false);
  const name = question.name.toLowerCase().replace(/\.$/, '');
  if (!zone) return reply('REFUSED', [], false);
  const ttl = NAME_TTL_SEC;
  const qtype = question.type as string; // 'ANY' decodes too, though the typings omit it
  if (name === zone.domain || name.endsWith(`.${zone.domain}`)) {
    const label = name === zone.domain ? '' : name.slice(0, -(zone.domain.length + 1));
    const e = zone.names.get(label);
    if (!e) return reply(label === '' ? 'NOERROR' : 'NXDOMAIN', [], true);
    const answers: dnsPacket.Answer[] = [];
    if (qtype === 'A' || qtype === 'ANY') for (const ip of e.v4) answers.push({ type: 'A', name: question.name, ttl, class: 'IN', data: ip });
    if (qtype === 'AAAA' || qtype === 'ANY') for (const ip of e.v6) answers.push({ type: 'AAAA', name: question.name, ttl, class: 'IN', data: ip });
    return reply('NOERROR', answers, true);
  }
  const addr = reverseAddress(name);
  if (addr && zone.prefixes.some((p) => p.version === addr.version && cidrContains(p, addr))) {
    const target = zone.reverse.get(name);
    if (!target) return reply('NXDOMAIN', [], true);
    return reply('NOERROR', qtype === 'PTR' || qtype === 'ANY' ? [{ type: 'PTR', name: question.name, ttl, class: 'IN', data: target }] : [], true);
  }
  return reply('REFUSED', [], false);
}

function rcodeBits(rcode: string): number {
  return { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 }[rcode] ?? 2;
}
