// The tunnel pairs the data-path benchmarks compare (bench/throughput.ts, bench/rtt.ts), set up
// between the two hosts of test/helpers/two-hosts: a second meshd pair with its own settings
// (BENCH_MESHD_B, for an A/B within one run) and a wireguard-go pair of a given build.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.js';
import { meshConfig, type Host, type TwoHosts } from '../test/helpers/two-hosts.js';

/** The shared upstream build (../shared/bin, see its README). */
export const SHARED_UPSTREAM = join(packageRoot(), '..', 'shared', 'bin', 'wireguard-go-0.0.20250522');

/**
 * The upstream wireguard-go binary a bench runs: BENCH_WIREGUARD_GO_UPSTREAM (then `legacy`, an older
 * variable's value, if given), else the shared build when it exists, else "none" (left out).
 */
export function upstreamWireguardGo(legacy?: string): string {
  return process.env.BENCH_WIREGUARD_GO_UPSTREAM ?? legacy ?? (existsSync(SHARED_UPSTREAM) ? SHARED_UPSTREAM : 'none');
}

/**
 * BENCH_MESHD_B parsed: space-separated VAR=value settings (a value may be "quoted" to hold
 * spaces), or null for none.
 */
export function meshdBFromEnv(v = process.env.BENCH_MESHD_B): Record<string, string> | null {
  const s = v?.trim();
  if (!s) return null;
  const env: Record<string, string> = {};
  for (const [k, ...rest] of s.match(/\S+=("[^"]*"|\S*)/g)?.map((kv) => kv.split('=')) ?? []) env[k] = rest.join('=').replace(/^"|"$/g, '');
  if (Object.keys(env).length === 0) throw new Error(`BENCH_MESHD_B=${s}: expected VAR=value settings`);
  return env;
}

/** The second meshd pair's interface suffix and listen port; its tunnel subnet is 10.80.0.x. */
export const MESHD_B_SUFFIX = 't';
export const MESHD_B_PORT = 51823;

/**
 * The same config as the first meshd pair on its own interfaces, port and subnet, the daemons
 * started with `env` (their settings, MESHD_NODE_ARGS, MESHD_BIN). Returns their pids and the
 * address of B's end.
 */
export async function meshdPairB(h: TwoHosts, env: Record<string, string>, extraInterface: string): Promise<{ pids: number[]; addr: string }> {
  const { lab } = h;
  const as = (x: Host, n: number): Host => ({ ...x, iface: `${x.iface}${MESHD_B_SUFFIX}`, mesh4: `10.80.0.${n}`, mesh6: `fd80::${n}` });
  const [a, b] = [as(h.a, 1), as(h.b, 2)];
  const o = { extraInterface, listenPort: MESHD_B_PORT, endpointPort: MESHD_B_PORT };
  const ta = await lab.meshd(h.a.ns, lab.file('a-b.conf', meshConfig(a, b, o)), a.iface, env);
  const tb = await lab.meshd(h.b.ns, lab.file('b-b.conf', meshConfig(b, a, o)), b.iface, env);
  return { pids: [ta.pid!, tb.pid!], addr: b.mesh4 };
}

export interface WgBuild {
  bin: string;
  /** Interface suffix, listen port and tunnel subnet (10.N.0.x) of this pair. */
  suffix: string;
  port: number;
  subnet: number;
}

/** A wireguard-go pair of build `b` between the hosts, up and configured; returns its pids. */
export async function wireguardGoPair(h: TwoHosts, b: WgBuild): Promise<number[]> {
  const { lab } = h;
  const pids: number[] = [];
  const setup = async (self: Host, other: Host) => {
    const iface = `${self.iface}${b.suffix}`;
    const p = await lab.wireguardGo(self.ns, iface, b.bin);
    pids.push(p.pid!);
    const last = (host: Host) => host.underlay.split('.')[3];
    const conf = lab.file(
      `${iface}.conf`,
      `[Interface]\nPrivateKey = ${self.keys.priv}\nListenPort = ${b.port}\n[Peer]\nPublicKey = ${other.keys.pub}\nAllowedIPs = 10.${b.subnet}.0.${last(other)}/32\nEndpoint = ${other.underlay}:${b.port}\n`,
    );
    await lab.exec(self.ns, 'wg', ['setconf', iface, conf]);
    await lab.exec(self.ns, 'ip', ['addr', 'add', `10.${b.subnet}.0.${last(self)}/24`, 'dev', iface]);
    await lab.exec(self.ns, 'ip', ['link', 'set', iface, 'up']);
  };
  await setup(h.a, h.b);
  await setup(h.b, h.a);
  return pids;
}
