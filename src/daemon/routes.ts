// Keeps the kernel's routes equal to the peers' AllowedIPs: one route per prefix, via the interface.
// A default route (0.0.0.0/0 or ::/0) is installed the way wg-quick does it, with policy routing:
// the default goes into a table of its own, looked up after the main table without its default
// route; meshd's own UDP socket (by source port) and its relays (by address) keep using the main
// table, so the tunnel's packets never loop into the tunnel.
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

async function ip(args: string[], tolerate = false): Promise<string> {
  try {
    return (await run('ip', args, { timeout: 10_000 })).stdout;
  } catch (err) {
    if (tolerate) return '';
    const e = err as { stderr?: string; message: string };
    throw new MeshdError('ENETCONFIG', `ip ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}

interface PolicyState {
  table: number;
  families: Set<4 | 6>;
  rules: string[][];
}

export class RouteTable {
  private readonly installed = new Map<string, Cidr>();
  private policy: PolicyState | null = null;

  constructor(
    private readonly iface: string,
    private readonly table: string,
    private readonly log: Logger,
    /** The UDP port and relay addresses that must bypass a default route through the tunnel. */
    private readonly bypass: () => { udpPort: number; relayAddrs: string[] },
  ) {}

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

  /** The bypass changed (listen port rebound): re-install the rules. */
  async refreshBypass(dev: Device): Promise<void> {
    if (!this.policy) return;
    await this.removePolicy();
    await this.reconcile(dev);
  }

  private async installPolicy(families: Set<4 | 6>): Promise<void> {
    // Rules left by a killed meshd point at tables that lost their routes with the interface.
    for (let t = DEFAULT_ROUTE_TABLE; t < DEFAULT_ROUTE_TABLE + 16; t++) {
      const routes = (await ip(['-4', 'route', 'show', 'table', String(t)], true)) + (await ip(['-6', 'route', 'show', 'table', String(t)], true));
      if (!routes.trim()) await removeStaleRules(t);
    }
    let table = DEFAULT_ROUTE_TABLE;
    while ((await ip(['-4', 'route', 'show', 'table', String(table)], true)).trim() || (await ip(['-6', 'route', 'show', 'table', String(table)], true)).trim()) table++;
    const { udpPort, relayAddrs } = this.bypass();
    const rules: string[][] = [];
    for (const f of families) {
      const fam = `-${f}`;
      await ip([fam, 'route', 'replace', f === 4 ? '0.0.0.0/0' : '::/0', 'dev', this.iface, 'table', String(table)]);
      // Each `ip rule add` without a priority goes before the existing ones: add the last one first.
      const ordered: string[][] = [
        [fam, 'rule', 'add', 'table', String(table)],
        ...relayAddrs.filter((a) => (f === 4) === !a.includes(':')).map((a) => [fam, 'rule', 'add', 'to', a, 'table', 'main']),
        [fam, 'rule', 'add', 'ipproto', 'udp', 'sport', String(udpPort), 'table', 'main'],
        [fam, 'rule', 'add', 'table', 'main', 'suppress_prefixlength', '0'],
      ];
      for (const r of ordered) {
        await ip(r);
        rules.push(r);
      }
    }
    this.policy = { table, families, rules };
    this.log.info({ component: 'routes', table, families: [...families] }, 'default route through the tunnel (policy routing, as wg-quick)');
  }

  /** Removes our rules (the table's routes go with the interface). Called on stop and on change. */
  async removePolicy(): Promise<void> {
    const p = this.policy;
    this.policy = null;
    if (!p) return;
    for (const r of [...p.rules].reverse()) await ip(r.map((x) => (x === 'add' ? 'del' : x)), true);
    for (const f of p.families) await ip([`-${f}`, 'route', 'flush', 'table', String(p.table)], true);
  }
}

/** Removes rules a killed meshd left for `table` (they point at a table that no longer has routes). */
export async function removeStaleRules(table: number): Promise<void> {
  for (const fam of ['-4', '-6']) {
    for (let i = 0; i < 64; i++) {
      const rules = await ip([fam, 'rule', 'show', 'table', String(table)], true);
      if (!rules.trim()) break;
      await ip([fam, 'rule', 'del', 'table', String(table)], true);
    }
  }
}
