// The kernel's connection tracking table, through conntrack(8): listing the flows of this host's
// network namespace and deleting those an access policy no longer allows (DESIGN.md §10), so an
// established connection is cut when the policy changes rather than living on as "established".
import { execFile } from 'node:child_process';
import { parseIp } from '../tunnel/cidr.js';
import type { Flow } from '../mesh/policy.js';

export interface TrackedFlow extends Flow {
  /** conntrack's protocol name (tcp, udp, icmp, icmpv6, gre, …): what -p takes to delete it. */
  protoName: string;
}

const PROTO: Record<string, Flow['proto']> = { tcp: 'tcp', udp: 'udp', icmp: 'icmp', icmpv6: 'icmp', 'ipv6-icmp': 'icmp' };

/**
 * Parses `conntrack -L` output: one flow per line, the original direction's src=/dst=/dport= first.
 * Lines it cannot read are skipped (the caller only ever deletes flows it understood).
 */
export function parseConntrack(text: string): TrackedFlow[] {
  const out: TrackedFlow[] = [];
  for (const line of text.split('\n')) {
    const tok = line.trim().split(/\s+/);
    if (tok.length < 4) continue;
    const field = (k: string) => tok.find((x) => x.startsWith(`${k}=`))?.slice(k.length + 1);
    const src = parseIp(field('src') ?? '');
    const dst = parseIp(field('dst') ?? '');
    if (!src || !dst || src.version !== dst.version) continue;
    const proto = PROTO[tok[0]] ?? 'other';
    const dp = field('dport');
    const dport = (proto === 'tcp' || proto === 'udp') && dp !== undefined && /^\d+$/.test(dp) ? Number(dp) : null;
    out.push({ proto, protoName: tok[0] === 'ipv6-icmp' ? 'icmpv6' : tok[0], src, dst, dport });
  }
  return out;
}

/** The arguments that delete one flow (and any other with the same addresses, protocol and port). */
export function deleteArgs(f: TrackedFlow, fmt: (a: Flow['src']) => string): string[] {
  return ['-D', '-f', f.src.version === 4 ? 'ipv4' : 'ipv6', '-p', f.protoName, '-s', fmt(f.src), '-d', fmt(f.dst), ...(f.dport !== null ? ['--dport', String(f.dport)] : [])];
}

function conntrack(args: string[]): Promise<{ ok: boolean; missing: boolean; stdout: string }> {
  return new Promise((resolve) => {
    execFile('conntrack', args, { timeout: 10_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout) =>
      resolve({ ok: !err, missing: (err as NodeJS.ErrnoException | null)?.code === 'ENOENT', stdout: String(stdout) }),
    );
  });
}

/** Every flow of this namespace (both families); null when conntrack(8) cannot be run. */
export async function listFlows(): Promise<TrackedFlow[] | null> {
  const [v4, v6] = await Promise.all([conntrack(['-L', '-f', 'ipv4']), conntrack(['-L', '-f', 'ipv6'])]);
  if (v4.missing) return null;
  return [...parseConntrack(v4.stdout), ...parseConntrack(v6.stdout)];
}

/** Deletes the flows; returns how many deletions conntrack accepted. */
export async function deleteFlows(flows: TrackedFlow[], fmt: (a: Flow['src']) => string): Promise<number> {
  const seen = new Set<string>();
  let n = 0;
  for (const f of flows) {
    const args = deleteArgs(f, fmt);
    const k = args.join(' ');
    if (seen.has(k)) continue;
    seen.add(k);
    if ((await conntrack(args)).ok) n++;
  }
  return n;
}
