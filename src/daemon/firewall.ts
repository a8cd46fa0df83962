// The roster's access policy in the kernel (DESIGN.md §10): one nftables table per mesh interface,
// compiled by src/mesh/policy.ts, replaced atomically (one `nft -f` transaction) whenever the roster
// changes, its counters read back for `meshd status`; connections the new policy forbids are cut
// from conntrack. The table goes when the daemon stops, and a stale one (kill -9) at the next start.
import { execFile } from 'node:child_process';
import type { Logger } from '../log.js';
import { formatIpAddr } from '../tunnel/cidr.js';
import { DEFAULT_COMMENT, flowAllowed, REFUSED_SEND_COMMENT, type HostRule } from '../mesh/policy.js';
import type { RosterDoc, RosterMember } from '../mesh/roster.js';
import { deleteFlows, listFlows } from './conntrack.js';

export interface PacketCount {
  packets: number;
  bytes: number;
}

export interface FirewallStatus {
  /** The nftables table (inet family) while a policy is installed, else null. */
  table: string | null;
  /** Rules of the policy in force (0: none, everyone reaches everyone). */
  rules: number;
  /** New connections admitted, by rule position (since the policy was installed). */
  accepted: Record<string, PacketCount>;
  /** Refused: arriving from members no rule admits ("default"), sent to members this host may not reach ("send"), and conntrack-invalid ("invalid"); totals since start. */
  refused: { default: PacketCount; send: PacketCount; invalid: PacketCount };
  /** Established connections cut because a policy change forbade them (since start). */
  cut: number;
  /** Why the policy is not (fully) enforced, if it is not. */
  error: string | null;
}

export interface NftResult {
  ok: boolean;
  stdout: string;
  stderr: string;
  missing: boolean;
}

export type NftRunner = (args: string[], input?: string) => Promise<NftResult>;

export const runNft: NftRunner = (args, input) =>
  new Promise((resolve) => {
    const p = execFile('nft', args, { timeout: 20_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ ok: !err, stdout: String(stdout), stderr: String(stderr).trim(), missing: (err as NodeJS.ErrnoException | null)?.code === 'ENOENT' }),
    );
    p.stdin?.on('error', () => undefined); // nft may exit before reading (an error it reports itself)
    p.stdin?.end(input ?? '');
  });

const zero = (): PacketCount => ({ packets: 0, bytes: 0 });

interface NftRuleJson {
  rule?: { comment?: string; expr?: { counter?: { packets: number; bytes: number } }[] };
}

/** The counters of a table listed with `nft -j`, summed by comment. */
export function countersByComment(json: string): Map<string, PacketCount> {
  const out = new Map<string, PacketCount>();
  let doc: { nftables?: NftRuleJson[] };
  try {
    doc = JSON.parse(json) as { nftables?: NftRuleJson[] };
  } catch {
    return out;
  }
  for (const item of doc.nftables ?? []) {
    const r = item.rule;
    if (!r?.comment) continue;
    const c = r.expr?.find((e) => e.counter)?.counter;
    if (!c) continue;
    const sum = out.get(r.comment) ?? zero();
    sum.packets += c.packets;
    sum.bytes += c.bytes;
    out.set(r.comment, sum);
  }
  return out;
}

export class PolicyFirewall {
  private installed = false;
  private rules = 0;
  private accepted = new Map<string, PacketCount>();
  /** Refusal totals of tables replaced earlier (a replacement starts its counters at zero). */
  private readonly base = { default: zero(), send: zero(), invalid: zero() };
  private current = { default: zero(), send: zero(), invalid: zero() };
  private cut = 0;
  private error: string | null = null;
  private queue: Promise<void> = Promise.resolve();
  /** Set by remove(): a roster applied while the daemon stops installs nothing. */
  private closed = false;

  constructor(
    readonly table: string,
    private readonly log: Logger,
    private readonly nft: NftRunner = runNft,
  ) {}

  /** At start: a table left by a daemon that was killed goes (nothing else removes it). */
  async removeStale(): Promise<void> {
    const r = await this.nft(['-j', 'list', 'table', 'inet', this.table]);
    if (!r.ok) return; // no such table, or no nft: nothing left behind
    const d = await this.nft(['-f', '-'], this.deleteScript());
    if (d.ok) this.log.warn({ component: 'policy', table: this.table }, 'removed a stale access-policy table (a daemon before this one did not stop cleanly)');
    else this.log.error({ component: 'policy', table: this.table, err: d.stderr }, 'cannot remove a stale access-policy table');
  }

  private deleteScript(): string {
    return `table inet ${this.table} {}\ndelete table inet ${this.table}\n`;
  }

  /**
   * Installs the compiled table (null: no policy, the table goes), then cuts the connections the
   * rules no longer allow. Calls run one after another, in order.
   */
  apply(text: string | null, rules: HostRule[], d: Pick<RosterDoc, 'prefixes'>, self: RosterMember | null): Promise<void> {
    const run = this.queue.then(() => this.install(text, rules, d, self));
    this.queue = run.catch((err: Error) => this.log.error({ component: 'policy', err: err.message }, 'access policy not applied'));
    return this.queue;
  }

  private async install(text: string | null, rules: HostRule[], d: Pick<RosterDoc, 'prefixes'>, self: RosterMember | null): Promise<void> {
    if (this.closed) return;
    if (this.installed) await this.readCounters(); // keep the refusal totals across the replacement
    for (const k of ['default', 'send', 'invalid'] as const) {
      this.base[k].packets += this.current[k].packets;
      this.base[k].bytes += this.current[k].bytes;
      this.current[k] = zero();
    }
    this.accepted = new Map();
    if (text === null) {
      if (this.installed) {
        const r = await this.nft(['-f', '-'], this.deleteScript());
        if (!r.ok) throw new Error(`nft: ${r.stderr}`);
        this.log.info({ component: 'policy', table: this.table }, 'access policy cleared: everyone in the mesh reaches this host');
      }
      this.installed = false;
      this.rules = 0;
      this.error = null;
      return;
    }
    const r = await this.nft(['-f', '-'], this.deleteScript() + text);
    if (!r.ok) {
      this.error = r.missing ? 'nft is not installed: the access policy is not enforced on this host' : `nft refused the policy table: ${r.stderr.split('\n')[0]}`;
      this.log.error({ component: 'policy', table: this.table, err: r.stderr }, this.error);
      return;
    }
    this.installed = true;
    this.rules = rules.length;
    this.error = null;
    this.log.info({ component: 'policy', table: this.table, rules: rules.length }, 'access policy installed');
    if (self) await this.cutForbidden(rules, d, self);
  }

  private async cutForbidden(rules: HostRule[], d: Pick<RosterDoc, 'prefixes'>, self: RosterMember): Promise<void> {
    const flows = await listFlows();
    if (flows === null) {
      this.error = 'conntrack is not installed: connections the policy no longer allows are not cut';
      this.log.warn({ component: 'policy' }, this.error);
      return;
    }
    const forbidden = flows.filter((f) => !flowAllowed(rules, d, self, f));
    if (!forbidden.length) return;
    const n = await deleteFlows(forbidden, formatIpAddr);
    this.cut += forbidden.length;
    this.log.info({ component: 'policy', flows: forbidden.length, deletions: n }, 'connections the policy no longer allows were cut');
  }

  /** Reads the table's counters (for status); a no-op without a table. */
  refresh(): Promise<void> {
    const run = this.queue.then(() => this.readCounters());
    this.queue = run.catch(() => undefined);
    return this.queue;
  }

  private async readCounters(): Promise<void> {
    if (!this.installed) return;
    const r = await this.nft(['-j', 'list', 'table', 'inet', this.table]);
    if (!r.ok) return;
    const c = countersByComment(r.stdout);
    this.current = { default: c.get(DEFAULT_COMMENT) ?? zero(), send: c.get(REFUSED_SEND_COMMENT) ?? zero(), invalid: c.get('invalid') ?? zero() };
    this.accepted = new Map([...c].filter(([k]) => k.startsWith('rule ')).map(([k, v]) => [k.slice(5), v]));
  }

  /** At stop: the table goes. */
  async remove(): Promise<void> {
    this.closed = true;
    await this.queue;
    if (!this.installed) return;
    const r = await this.nft(['-f', '-'], this.deleteScript());
    if (!r.ok) this.log.error({ component: 'policy', table: this.table, err: r.stderr }, 'cannot remove the access-policy table');
    this.installed = false;
  }

  status(): FirewallStatus {
    const add = (a: PacketCount, b: PacketCount): PacketCount => ({ packets: a.packets + b.packets, bytes: a.bytes + b.bytes });
    return {
      table: this.installed ? this.table : null,
      rules: this.rules,
      accepted: Object.fromEntries(this.accepted),
      refused: { default: add(this.base.default, this.current.default), send: add(this.base.send, this.current.send), invalid: add(this.base.invalid, this.current.invalid) },
      cut: this.cut,
      error: this.error,
    };
  }
}
