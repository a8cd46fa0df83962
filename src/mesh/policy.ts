// The roster's access policy (DESIGN.md §10), in Nebula's spirit: rules that allow traffic from a
// set of members (groups, names, mesh prefixes, "*") to a set (groups, names, "*") on ports. No rules
// means everyone reaches everyone. Pure: parsing and checking the rules, and compiling them into the
// nftables table one receiving host installs (nothing per packet in JavaScript).
import { cidrContains, formatCidr, parseCidr, type Cidr } from '../tunnel/cidr.js';
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

/** The source prefixes a rule's `from` stands for. */
function sources(r: PolicyRule, members: RosterMember[]): Cidr[] {
  const out: Cidr[] = [];
  for (const sel of r.from) {
    if (sel.includes('/') && sel !== '*') out.push(parseCidr(sel)!);
    else for (const m of members) if (matches(sel, m)) out.push(...m.addresses);
  }
  return out;
}

/** An nftables table name for an interface (letters, digits and underscores). */
export function policyTableName(iface: string): string {
  return `meshd_${iface.replace(/[^A-Za-z0-9_]/g, '_')}`;
}

function nftPorts(p: PortSpec, family: 4 | 6): string {
  if (p.proto === '*') return '';
  if (p.proto === 'icmp') return family === 4 ? 'meta l4proto icmp' : 'meta l4proto ipv6-icmp';
  if (p.from === null) return `meta l4proto ${p.proto}`;
  return `${p.proto} dport ${p.from === p.to ? p.from : `${p.from}-${p.to}`}`;
}

function elements(cidrs: Cidr[], version: 4 | 6): string[] {
  return [...new Set(cidrs.filter((c) => c.version === version).map(formatCidr))];
}

/**
 * The table a receiving host (`self`, a member) installs on `iface`, or null when the roster has no
 * rules. Input: replies pass (conntrack), new traffic from the mesh's prefixes passes only where a
 * rule whose `to` includes this host allows it, counted per rule; the rest is counted and dropped.
 * Traffic from outside the mesh's prefixes (static [Peer]s) is not the roster's business. Output:
 * new traffic to a member this host may not reach is refused at once (ICMP administratively
 * prohibited) instead of timing out at the receiver.
 */
export function compilePolicy(p: Policy | null, d: Pick<RosterDoc, 'members' | 'prefixes'>, self: RosterMember, iface: string, nowMs: number): string | null {
  if (!p || p.rules.length === 0) return null;
  const members = d.members.filter((m) => m.expiresMs === null || m.expiresMs > nowMs);
  const table = policyTableName(iface);
  const sets: string[] = [];
  const input: string[] = [];
  const output: string[] = [];
  const set = (name: string, v: 4 | 6, els: string[]) => sets.push(`  set ${name} { type ${v === 4 ? 'ipv4_addr' : 'ipv6_addr'}; flags interval; ${els.length ? `elements = { ${els.join(', ')} }` : ''} }`);
  for (const v of [4, 6] as const) set(`mesh${v}`, v, elements(d.prefixes, v));
  p.rules.forEach((r, i) => {
    const ports = r.ports.map((x) => parsePort(x)!);
    if (r.to.some((sel) => matches(sel, self))) {
      const src = sources(r, members);
      for (const v of [4, 6] as const) {
        const els = elements(src, v);
        if (!els.length) continue;
        set(`in${i}_${v}`, v, els);
        for (const port of ports) input.push(`    ip${v === 4 ? '' : '6'} saddr @in${i}_${v} ${nftPorts(port, v)} counter accept comment "rule ${i + 1}"`);
      }
    }
    if (r.from.some((sel) => (sel.includes('/') && sel !== '*' ? self.addresses.some((a) => a.version === parseCidr(sel)!.version && cidrContains(parseCidr(sel)!, a)) : matches(sel, self)))) {
      const dst = members.filter((m) => r.to.some((sel) => matches(sel, m))).flatMap((m) => m.addresses);
      for (const v of [4, 6] as const) {
        const els = elements(dst, v);
        if (!els.length) continue;
        set(`out${i}_${v}`, v, els);
        for (const port of ports) output.push(`    ip${v === 4 ? '' : '6'} daddr @out${i}_${v} ${nftPorts(port, v)} accept`);
      }
    }
  });
  return [
    `table inet ${table} {`,
    ...sets,
    '  chain input {',
    '    type filter hook input priority filter; policy accept;',
    `    iifname != "${iface}" accept`,
    '    ct state established,related accept',
    '    ct state invalid drop',
    '    meta nfproto ipv4 ip saddr != @mesh4 accept',
    '    meta nfproto ipv6 ip6 saddr != @mesh6 accept',
    ...input,
    '    counter drop comment "default"',
    '  }',
    '  chain output {',
    '    type filter hook output priority filter; policy accept;',
    `    oifname != "${iface}" accept`,
    '    ct state established,related accept',
    ...output,
    '    meta nfproto ipv4 ip daddr @mesh4 counter reject with icmpx admin-prohibited comment "not allowed to send"',
    '    meta nfproto ipv6 ip6 daddr @mesh6 counter reject with icmpx admin-prohibited comment "not allowed to send"',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Whether the policy allows a new connection from `src` to `self` (for cutting established ones). */
export function allows(p: Policy | null, d: Pick<RosterDoc, 'members'>, self: RosterMember, src: { version: 4 | 6; bytes: Uint8Array }, proto: 'tcp' | 'udp' | 'icmp', port: number | null): boolean {
  if (!p || p.rules.length === 0) return true;
  return p.rules.some((r) => {
    if (!r.to.some((sel) => matches(sel, self))) return false;
    const from = sources(r, d.members);
    if (!from.some((c) => c.version === src.version && cidrContains(c, src))) return false;
    return r.ports.some((x) => {
      const ps = parsePort(x)!;
      if (ps.proto === '*') return true;
      if (ps.proto !== proto) return false;
      return ps.from === null || (port !== null && port >= ps.from && port <= (ps.to ?? ps.from));
    });
  });
}
