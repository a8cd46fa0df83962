// Keeps the kernel's routes equal to the peers' AllowedIPs: one route per prefix, via the interface.
// A default route (0.0.0.0/0 or ::/0) is installed the way wg-quick does it, with policy routing:
// the default goes into a table of its own, looked up after the main table without its default
// route; meshd's own UDP socket (by source port), its relays (by address) and the peers its birthday
// sockets probe (by address and port: those sockets' ports are many and ephemeral) keep using the
// main table, so the tunnel's packets never loop into the tunnel.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Logger } from '../log.js';
import { formatCidr, type Cidr } from '../tunnel/cidr.js';
import type { Device } from '../tunnel/device.js';
import { applyRoutes, isDefaultRoute } from '../tun/netconfig.js';
import { MeshdError } from '../errors.js';

const run = promisify(execFile);
/** wg-quick's first table number for default routes. */
export const DEFAULT_ROUTE_TABLE = 51820;
/** How many tables (one per meshd with a default route in the namespace) are tried from it. */
const TABLES = 16;

/**
 * The routing protocol our rules are tagged with (`ip rule … protocol N`), one per table: a restart
 * after `kill -9` finds the bypass rules that instance left by it (removeStaleRules) — left alone,
 * a stale source-port rule would let another program's traffic skip the tunnel. From 0xe0, clear
 * of the numbers iproute2's rt_protos names.
 */
export function ruleProtocol(table: number): number {
  return 0xe0 + (table - DEFAULT_ROUTE_TABLE);
}

async function ip(args: string[], tolerate = false): Promise<string> {
  try {
    return (await run('ip', args, { timeout: 10_000 })).stdout;
  } catch (err) {
    if (tolerate) return '';
    const e = err as { stderr?: string; message: string };
    throw new MeshdError('ENETCONFIG', `ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

/** A birthday-probed peer's bypass: its rule without a protocol, and the rule as installed (null: not). */
interface PeerBypass {
  rule: string[];
  installed: string[] | null;
}

/** Adds the peer's rule, tagged with the policy table's protocol. */
async function addPeerRule(b: PeerBypass, table: number): Promise<void> {
  const rule = [...b.rule, 'protocol', String(ruleProtocol(table))];
  await ip(rule);
  b.installed = rule;
}

interface PolicyState {
  table: number;
  families: Set<4 | 6>;
  rules: string[][];
}

export class RouteTable {
  private readonly installed = new Map<string, Cidr>();
  private policy: PolicyState | null = null;
  /** Per peer, the rule for the IPv4 endpoint its birthday sockets send to. */
  private readonly peerBypass = new Map<string, PeerBypass>();
  /** Rule changes one after another: a peer's add and delete, and the policy's install and removal. */
  private ruleQueue: Promise<void> = Promise.resolve();

  constructor(
    private readonly iface: string,
    private readonly table: string,
    private readonly log: Logger,
    /** The UDP port and relay addresses that must bypass a default route through the tunnel. */
    private readonly bypass: () => { udpPort: number; relayAddrs: string[] },
  ) {}

  /** Counts the starts and ends of default-route policy changes (install, removal). */
  private policyChanges = 0;
  /** Policy changes under way now. */
  private policyChanging = 0;

  /** Whether a default route through the tunnel is installed, or being installed or removed. */
  get hasDefaultRoute(): boolean {
    return this.policy !== null || this.policyChanging > 0;
  }

  /**
   * Moves on at the start and at the end of every change of the default-route policy: two reads
   * that agree mean no change began or ended between them.
   */
  get policyEpoch(): number {
    return this.policyChanges;
  }

  private async changingPolicy(step: () => Promise<void>): Promise<void> {
    this.policyChanges++;
    this.policyChanging++;
    try {
      await step();
    } finally {
      this.policyChanging--;
      this.policyChanges++;
    }
  }

  async reconcile(dev: Device): Promise<void> {
    if (this.table === 'off') return;
    const want = new Map<string, Cidr>();
    const defaults = new Set<4 | 6>();
    for (const p of dev.peers.values()) {
      for (const c of dev.allowedIps.prefixesOf(p)) {
        if (isDefaultRoute(c) && this.table === 'auto') defaults.add(c.version);
        else want.set(formatCidr(c), c);
      }
    }
    const del = [...this.installed].filter(([k]) => !want.has(k));
    const add = [...want].filter(([k]) => !this.installed.has(k));
    await applyRoutes(this.iface, add.map(([, c]) => c), del.map(([, c]) => c), this.table);
    for (const [k] of del) this.installed.delete(k);
    for (const [k, c] of add) this.installed.set(k, c);
    const same = this.policy && [...defaults].every((f) => this.policy!.families.has(f)) && defaults.size === this.policy.families.size;
    if (!same) {
      await this.removePolicy();
      if (defaults.size) await this.installPolicy(defaults);
    }
  }

  /**
   * A birthday attempt's sockets will send to `to` for `peerId` (replacing what they sent to
   * before): with a default route through the tunnel, traffic to it keeps to the main table.
   * Resolves once the rule is in place (at once without a default route through the tunnel).
   */
  bypassPeer(peerId: string, to: { address: string; port: number }): Promise<void> {
    return this.rules(async () => {
      const rule = ['-4', 'rule', 'add', 'to', `${to.address}/32`, 'ipproto', 'udp', 'dport', String(to.port), 'table', 'main'];
      const old = this.peerBypass.get(peerId);
      const withPolicy = this.policy?.families.has(4) ? this.policy.table : null;
      if (old && old.rule.join(' ') === rule.join(' ') && (old.installed !== null || withPolicy === null)) return;
      if (old?.installed) await ip(ruleDel(old.installed), true);
      const entry: PeerBypass = { rule, installed: null };
      this.peerBypass.set(peerId, entry);
      if (withPolicy !== null) await addPeerRule(entry, withPolicy);
    });
  }

  /** The peer's birthday sockets closed: its rule goes. */
  unbypassPeer(peerId: string): Promise<void> {
    return this.rules(async () => {
      const old = this.peerBypass.get(peerId);
      this.peerBypass.delete(peerId);
      if (old?.installed) await ip(ruleDel(old.installed), true);
    });
  }

  private rules(step: () => Promise<void>): Promise<void> {
    const next = this.ruleQueue.then(step);
    this.ruleQueue = next.catch((err: Error) => this.log.warn({ component: 'routes', err: err.message }, 'could not change a routing rule'));
    return this.ruleQueue;
  }

  /** The bypass changed (listen port rebound): re-install the rules. */
  async refreshBypass(dev: Device): Promise<void> {
    if (!this.policy) return;
    await this.removePolicy();
    await this.reconcile(dev);
  }

  private installPolicy(families: Set<4 | 6>): Promise<void> {
    return this.changingPolicy(() => this.installPolicyRules(families));
  }

  private async installPolicyRules(families: Set<4 | 6>): Promise<void> {
    // Rules left by a killed meshd point at tables that lost their routes with the interface.
    for (let t = DEFAULT_ROUTE_TABLE; t < DEFAULT_ROUTE_TABLE + TABLES; t++) {
      const routes = (await ip(['-4', 'route', 'show', 'table', String(t)], true)) + (await ip(['-6', 'route', 'show', 'table', String(t)], true));
      if (!routes.trim()) await removeStaleRules(t);
    }
    let table = DEFAULT_ROUTE_TABLE;
    while ((await ip(['-4', 'route', 'show', 'table', String(table)], true)).trim() || (await ip(['-6', 'route', 'show', 'table', String(table)], true)).trim()) table++;
    if (table >= DEFAULT_ROUTE_TABLE + TABLES) throw new MeshdError('ENETCONFIG', `no free routing table for the default route: ${DEFAULT_ROUTE_TABLE}–${DEFAULT_ROUTE_TABLE + TABLES - 1} all have routes`);
    const proto = ['protocol', String(ruleProtocol(table))];
    const { udpPort, relayAddrs } = this.bypass();
    const rules: string[][] = [];
    for (const f of families) {
      const fam = `-${f}`;
      await ip([fam, 'route', 'replace', f === 4 ? '0.0.0.0/0' : '::/0', 'dev', this.iface, 'table', String(table)]);
      // Each `ip rule add` without a priority goes before the existing ones: add the last one first.
      const ordered: string[][] = [
        [fam, 'rule', 'add', 'table', String(table), ...proto],
        ...relayAddrs.filter((a) => (f === 4) === !a.includes(':')).map((a) => [fam, 'rule', 'add', 'to', a, 'table', 'main', ...proto]),
        [fam, 'rule', 'add', 'ipproto', 'udp', 'sport', String(udpPort), 'table', 'main', ...proto],
        [fam, 'rule', 'add', 'table', 'main', 'suppress_prefixlength', '0', ...proto],
      ];
      for (const r of ordered) {
        await ip(r);
        rules.push(r);
      }
    }
    this.policy = { table, families, rules };
    if (families.has(4)) {
      await this.rules(async () => {
        for (const b of this.peerBypass.values()) if (!b.installed) await addPeerRule(b, table);
      });
    }
    this.log.info({ component: 'routes', table, families: [...families] }, 'default route through the tunnel (policy routing, as wg-quick)');
  }

  /** Removes our rules (the table's routes go with the interface). Called on stop and on change. */
  async removePolicy(): Promise<void> {
    const p = this.policy;
    if (!p) return;
    await this.changingPolicy(() => this.removePolicyRules(p));
  }

  private async removePolicyRules(p: PolicyState): Promise<void> {
    this.policy = null;
    await this.rules(async () => {
      for (const b of this.peerBypass.values()) {
        if (!b.installed) continue;
        await ip(ruleDel(b.installed), true);
        b.installed = null;
      }
    });
    for (const r of [...p.rules].reverse()) await ip(ruleDel(r), true);
    for (const f of p.families) await ip([`-${f}`, 'route', 'flush', 'table', String(p.table)], true);
  }
}

function ruleDel(rule: string[]): string[] {
  return rule.map((x) => (x === 'add' ? 'del' : x));
}

/**
 * Removes rules a killed meshd left for `table` (its routes went with the interface): the rule to the
 * table, and the bypass rules tagged with the table's protocol.
 */
export async function removeStaleRules(table: number): Promise<void> {
  for (const fam of ['-4', '-6']) {
    for (let i = 0; i < 64; i++) {
      const rules = await ip([fam, 'rule', 'show', 'table', String(table)], true);
      if (!rules.trim()) break;
      await ip([fam, 'rule', 'del', 'table', String(table)], true);
    }
    // By priority, from the listing (not `ip rule flush protocol N`: an iproute2 that ignored the
    // filter would flush every rule).
    const proto = String(ruleProtocol(table));
    for (const pref of staleRulePriorities(await ip([fam, '-j', 'rule', 'show'], true), proto)) await ip([fam, 'rule', 'del', 'pref', String(pref), 'protocol', proto], true);
  }
}

/** The priorities of the rules tagged with protocol `proto` in `ip -j rule show`'s output. */
export function staleRulePriorities(json: string, proto: string): number[] {
  let rules: unknown;
  try {
    rules = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(rules)) return [];
  const out: number[] = [];
  for (const r of rules as { priority?: unknown; protocol?: unknown }[]) {
    if (typeof r.priority === 'number' && String(r.protocol) === proto) out.push(r.priority);
  }
  return out;
}
