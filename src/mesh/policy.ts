// The roster's access policy (DESIGN.md §10), in Nebula's spirit: rules that allow traffic from a
// set of members (groups, names, mesh prefixes, "*") to a set (groups, names, "*") on ports. No rules
// means everyone reaches everyone. Pure: parsing and checking the rules, and compiling them into the
// nftables table one receiving host installs (nothing per packet in JavaScript).
import { cidrContains, formatCidr, parseCidr, type Cidr, type IpAddr } from '../tunnel/cidr.js';
import type { RosterDoc, RosterMember } from './roster.js';

export interface PortSpec {
  proto: 'tcp' | 'udp' | 'icmp' | '*';
  /** Inclusive range; null for icmp and "*". */
  from: number | null;
  to: number | null;
}

export interface PolicyRule {
  from: string[];
  to: string[];
  ports: string[];
}

export interface Policy {
  rules: PolicyRule[];
}

/** "tcp/22", "tcp/5432-5433", "udp/53", "icmp", "*" → a PortSpec, or null. */
export function parsePort(s: string): PortSpec | null {
  if (s === '*') return { proto: '*', from: null, to: null };
  if (s === 'icmp') return { proto: 'icmp', from: null, to: null };
  const m = /^(tcp|udp)\/(\d{1,5})(?:-(\d{1,5}))?$/.exec(s);
  if (m) {
    const from = Number(m[2]);
    const to = m[3] !== undefined ? Number(m[3]) : from;
    if (from < 1 || to > 65535 || from > to) return null;
    return { proto: m[1] as 'tcp' | 'udp', from, to };
  }
  const any = /^(tcp|udp)\/\*$/.exec(s);
  return any ? { proto: any[1] as 'tcp' | 'udp', from: null, to: null } : null;
}

/** Parses a policy file's JSON (`{"rules": […]}`); throws a one-line message naming the rule. */
export function parsePolicy(json: unknown): Policy {
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { rules?: unknown }).rules)) throw new Error('a policy is {"rules": [ … ]}');
  const rules: PolicyRule[] = [];
  (json as { rules: unknown[] }).rules.forEach((r, i) => {
    const at = `rule ${i + 1}`;
    if (typeof r !== 'object' || r === null) throw new Error(`${at}: not an object`);
    const o = r as Record<string, unknown>;
    const list = (k: string): string[] => {
      const v = o[k];
      if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'string')) throw new Error(`${at}: "${k}" must be a non-empty list of strings`);
      return v as string[];
    };
    rules.push({ from: list('from'), to: list('to'), ports: list('ports') });
  });
  return { rules };
}

/** Checks a policy against the roster's members and groups; returns a message naming the rule, or null. */
export function checkPolicy(p: Policy, d: Pick<RosterDoc, 'members' | 'prefixes'>): string | null {
  const names = new Set(d.members.map((m) => m.name));
  const groups = new Set(d.members.flatMap((m) => m.groups));
  for (let i = 0; i < p.rules.length; i++) {
    const r = p.rules[i];
    const at = `rule ${i + 1}`;
    for (const [side, list] of [['from', r.from], ['to', r.to]] as const) {
      for (const x of list) {
        if (x === '*') continue;
        if (x.startsWith('group:')) {
          if (!groups.has(x.slice(6))) return `${at}: ${side} "${x}": no member is in that group`;
        } else if (x.includes('/')) {
          if (side === 'to') return `${at}: to "${x}": a rule's destination is members or groups, not a prefix`;
          const c = parseCidr(x);
          if (!c || !d.prefixes.some((pf) => pf.version === c.version && cidrContains(pf, c) && c.bits >= pf.bits)) return `${at}: from "${x}": not a prefix inside the mesh's prefixes`;
        } else if (!names.has(x)) return `${at}: ${side} "${x}": no such member`;
      }
    }
    for (const port of r.ports) if (!parsePort(port)) return `${at}: port "${port}" is not tcp/N, tcp/N-M, udp/…, icmp or *`;
  }
  return null;
}

function matches(sel: string, m: RosterMember): boolean {
  if (sel === '*') return true;
  if (sel.startsWith('group:')) return m.groups.includes(sel.slice(6));
  return sel === m.name;
}

/** Whether a `from` entry covers this member (by name, group, "*", or a prefix holding one of its addresses). */
function fromCovers(sel: string, m: RosterMember): boolean {
  if (sel.includes('/') && sel !== '*') {
    const c = parseCidr(sel)!;
    return m.addresses.some((a) => a.version === c.version && cidrContains(c, a));
  }
  return matches(sel, m);
}

/** One rule as it concerns one host: whom it admits, whom it lets this host send to, on which ports. */
export interface HostRule {
  /** Position in the policy, from 1. */
  position: number;
  /** Sources this host admits under the rule (empty: the rule's `to` does not include this host). */
  inbound: Cidr[];
  /** Addresses this host may send to under the rule (empty: its `from` does not cover this host). */
  outbound: Cidr[];
  ports: PortSpec[];
}

/** The rules as one member (`self`) enforces them; members whose expiry passed count for nothing. */
export function hostRules(p: Policy, d: Pick<RosterDoc, 'members'>, self: RosterMember, nowMs: number): HostRule[] {
  const members = d.members.filter((m) => m.expiresMs === null || m.expiresMs > nowMs);
  return p.rules.map((r, i) => {
    const inbound: Cidr[] = [];
    if (r.to.some((sel) => matches(sel, self))) {
      for (const sel of r.from) {
        if (sel.includes('/') && sel !== '*') inbound.push(parseCidr(sel)!);
        else for (const m of members) if (matches(sel, m)) inbound.push(...m.addresses);
      }
    }
    const outbound = r.from.some((sel) => fromCovers(sel, self)) ? members.filter((m) => r.to.some((sel) => matches(sel, m))).flatMap((m) => m.addresses) : [];
    return { position: i + 1, inbound, outbound, ports: r.ports.map((x) => parsePort(x)!) };
  });
}

/** An nftables table name for an interface (letters, digits and underscores). */
export function policyTableName(iface: string): string {
  return `meshd_${iface.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

/** The counter comments a table carries besides "rule N". */
export const DEFAULT_COMMENT = 'default';
export const REFUSED_SEND_COMMENT = 'not allowed to send';

/** The port matches of a rule, grouped: one nft match per protocol (anonymous sets of ports). */
function nftMatches(ports: PortSpec[], family: 4 | 6): string[] {
  if (ports.some((p) => p.proto === '*')) return [''];
  const out: string[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    const ps = ports.filter((p) => p.proto === proto);
    if (!ps.length) continue;
    if (ps.some((p) => p.from === null)) out.push(`meta l4proto ${proto}`);
    else {
      const els = [...new Set(ps.map((p) => (p.from === p.to ? `${p.from}` : `${p.from}-${p.to}`)))];
      out.push(`${proto} dport ${els.length === 1 ? els[0] : `{ ${els.join(', ')} }`}`);
    }
  }
  if (ports.some((p) => p.proto === 'icmp')) out.push(family === 4 ? 'meta l4proto icmp' : 'meta l4proto ipv6-icmp');
  return out;
}

/**
 * A set's elements: each prefix once, none inside another (nft refuses overlapping intervals). Host
 * addresses are most of them and never overlap each other, so only the few wider prefixes are compared.
 */
function elements(cidrs: Cidr[], version: 4 | 6): string[] {
  const full = version === 4 ? 32 : 128;
  const unique = new Map<string, Cidr>();
  for (const c of cidrs) if (c.version === version) unique.set(formatCidr(c), c);
  const wide = [...unique.values()].filter((c) => c.bits < full).sort((a, b) => a.bits - b.bits);
  const kept: Cidr[] = [];
  for (const w of wide) if (!kept.some((k) => k.bits <= w.bits && cidrContains(k, w))) kept.push(w);
  const hosts = [...unique.values()].filter((c) => c.bits === full && !kept.some((k) => cidrContains(k, c)));
  return [...kept, ...hosts].map(formatCidr);
}

/**
 * The table a receiving host (`self`, a member) installs on `iface`, or null when the roster has no
 * rules. Input: replies pass (conntrack), new traffic from the mesh's prefixes passes only where a
 * rule whose `to` includes this host allows it, counted per rule; the rest is counted and dropped.
 * Traffic from outside the mesh's prefixes (static [Peer]s) is not the roster's business. Output:
 * new traffic to a member this host may not reach is refused at once (ICMP administratively
 * prohibited; a TCP segment of a connection the policy cut gets a reset, so the socket fails now)
 * instead of timing out at the receiver.
 */
export function compilePolicy(p: Policy | null, d: Pick<RosterDoc, 'members' | 'prefixes'>, self: RosterMember, iface: string, nowMs: number): string | null {
  if (!p || p.rules.length === 0) return null;
  const table = policyTableName(iface);
  const sets: string[] = [];
  const input: string[] = [];
  const output: string[] = [];
  const set = (name: string, v: 4 | 6, els: string[]) => sets.push(`  set ${name} { type ${v === 4 ? 'ipv4_addr' : 'ipv6_addr'}; flags interval; ${els.length ? `elements = { ${els.join(', ')} }` : ''} }`);
  for (const v of [4, 6] as const) set(`mesh${v}`, v, elements(d.prefixes, v));
  for (const r of hostRules(p, d, self, nowMs)) {
    const i = r.position - 1;
    for (const v of [4, 6] as const) {
      const ip = v === 4 ? 'ip' : 'ip6';
      const src = elements(r.inbound, v);
      if (src.length) {
        set(`in${i}_${v}`, v, src);
        for (const m of nftMatches(r.ports, v)) input.push(`    ${ip} saddr @in${i}_${v} ${m} counter accept comment "rule ${r.position}"`.replace(/  +counter/, ' counter'));
      }
      const dst = elements(r.outbound, v);
      if (dst.length) {
        set(`out${i}_${v}`, v, dst);
        for (const m of nftMatches(r.ports, v)) output.push(`    ${ip} daddr @out${i}_${v} ${m} accept`.replace(/  +accept/, ' accept'));
      }
    }
  }
  return [
    `table inet ${table} {`,
    ...sets,
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    `    iifname != "${iface}" accept`,
    '    ct state established,related accept',
    '    ct state invalid counter drop comment "invalid"',
    '    meta nfproto ipv4 ip saddr != @mesh4 accept',
    '    meta nfproto ipv6 ip6 saddr != @mesh6 accept',
    ...input,
    `    counter drop comment "${DEFAULT_COMMENT}"`,
    '  }',
    '  chain output {',
    '    type filter hook output priority filter; policy accept;',
    `    oifname != "${iface}" accept`,
    '    ct state established,related accept',
    ...output,
    `    meta nfproto ipv4 ip daddr @mesh4 tcp flags & (syn | ack) != syn counter reject with tcp reset comment "${REFUSED_SEND_COMMENT}"`,
    `    meta nfproto ipv6 ip6 daddr @mesh6 tcp flags & (syn | ack) != syn counter reject with tcp reset comment "${REFUSED_SEND_COMMENT}"`,
    `    meta nfproto ipv4 ip daddr @mesh4 counter reject with icmpx admin-prohibited comment "${REFUSED_SEND_COMMENT}"`,
    `    meta nfproto ipv6 ip6 daddr @mesh6 counter reject with icmpx admin-prohibited comment "${REFUSED_SEND_COMMENT}"`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** A tracked connection, as conntrack lists it (the original direction). */
export interface Flow {
  proto: 'tcp' | 'udp' | 'icmp' | 'other';
  src: IpAddr;
  dst: IpAddr;
  /** Destination port (tcp, udp), else null. */
  dport: number | null;
}

function portAllows(ps: PortSpec, proto: Flow['proto'], port: number | null): boolean {
  if (ps.proto === '*') return true;
  if (ps.proto !== proto) return false;
  return ps.from === null || (port !== null && port >= ps.from && port <= (ps.to ?? ps.from));
}

const within = (cs: Cidr[], a: IpAddr) => cs.some((c) => c.version === a.version && cidrContains(c, a));

/**
 * Whether the policy lets this connection go on at `self`: one from a mesh source to this host needs
 * a rule admitting it, one from this host to a member a rule letting this host send; anything else
 * (static peers, traffic not of this host) is not the policy's business.
 */
export function flowAllowed(rules: HostRule[], d: Pick<RosterDoc, 'prefixes'>, self: RosterMember, f: Flow): boolean {
  if (within(self.addresses, f.src) && within(self.addresses, f.dst)) return true; // this host to itself (loopback)
  if (within(self.addresses, f.dst) && within(d.prefixes, f.src)) return rules.some((r) => within(r.inbound, f.src) && r.ports.some((ps) => portAllows(ps, f.proto, f.dport)));
  if (within(self.addresses, f.src) && within(d.prefixes, f.dst) && !within(self.addresses, f.dst)) return rules.some((r) => within(r.outbound, f.dst) && r.ports.some((ps) => portAllows(ps, f.proto, f.dport)));
  return true;
}

/** Whether the policy allows a new connection from `src` to `self` (no policy: everything). */
export function allows(p: Policy | null, d: Pick<RosterDoc, 'members' | 'prefixes'>, self: RosterMember, src: IpAddr, proto: 'tcp' | 'udp' | 'icmp', port: number | null, nowMs = Date.now()): boolean {
  if (!p || p.rules.length === 0) return true;
  const dst = self.addresses.find((a) => a.version === src.version) ?? self.addresses[0];
  return flowAllowed(hostRules(p, d, self, nowMs), d, self, { proto, src, dst, dport: port });
}
