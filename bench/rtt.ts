// Idle-ping round trips, ping by ping: raw veth, meshd and upstream wireguard-go (and a second meshd
// pair for an A/B), interleaved rounds of pings, each packet finding the daemons idle. Where
// bench/throughput.ts gives each round's average after a full run of load, this gives the
// distribution (percentiles of every ping) and both daemons' CPU per ping, from fresh daemons by
// default, so it shows what sparse traffic meets on a host that is not moving bulk data.
//   BENCH_ROUNDS (default 6), BENCH_PINGS (per round and path, default 200),
//   BENCH_INTERVAL (ping -i, default 0.01),
//   BENCH_WARM (seconds of iperf3 TCP through each tunnel before the pings; default 0: cold),
//   BENCH_WIREGUARD_GO_UPSTREAM (default ../shared/bin/wireguard-go-0.0.20250522; "none" leaves it out),
//   BENCH_TRACE=1: the JSON also holds every ping (seconds since the meshd pair started, ms), and the
//   slowest pings of each path are printed with when they came,
//   BENCH_MESHD_B: a second meshd pair with these VAR=value settings (bench/pairs.ts), as in bench/throughput.ts
//   (e.g. "MESHD_V8_TIER_UP=default" or "MESHD_BIN=/other/tree/bin/meshd.js").
// Writes bench/results/rtt-*.json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.js';
import { meshConfig, twoHosts } from '../test/helpers/two-hosts.js';
import { cpuSeconds, iperf3, machine, percentile, rssMiB, withBenchLab, writeResult } from './common.js';
import { meshdBFromEnv, meshdPairB, wireguardGoPair, upstreamWireguardGo } from './pairs.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const PINGS = Number(process.env.BENCH_PINGS ?? 200);
const INTERVAL = process.env.BENCH_INTERVAL ?? '0.01';
const WARM = Number(process.env.BENCH_WARM ?? 0);
const UPSTREAM = upstreamWireguardGo();

const MESHD_B = meshdBFromEnv();
const TRACE = process.env.BENCH_TRACE === '1';

interface Summary {
  pings: number;
  lost: number;
  mean: number;
  p10: number;
  p25: number;
  p50: number;
  p75: number;
  p90: number;
  p99: number;
  /** Both daemons' CPU (user + system) per ping, µs; null for raw veth. */
  cpuPerPingUs: number | null;
}

function summary(xs: number[], sent: number, cpuSeconds: number | null): Summary {
  const s = [...xs].sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 1000) / 1000;
  return {
    pings: sent,
    lost: sent - xs.length,
    mean: r(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)),
    p10: r(percentile(s, 10)),
    p25: r(percentile(s, 25)),
    p50: r(percentile(s, 50)),
    p75: r(percentile(s, 75)),
    p90: r(percentile(s, 90)),
    p99: r(percentile(s, 99)),
    cpuPerPingUs: cpuSeconds === null ? null : Math.round((cpuSeconds / sent) * 1e6),
  };
}

await withBenchLab(['ping', 'wg', ...(WARM > 0 ? ['iperf3'] : []), ...(UPSTREAM !== 'none' ? [UPSTREAM] : [])], async (lab) => {
  const h = await twoHosts(lab);
  const extra = 'MTU = 1420';
  const startedAt = Date.now() / 1000;
  const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: extra })), h.a.iface);
  const mb = await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a, { extraInterface: extra })), h.b.iface);
  const addr: Record<string, string> = { veth: h.b.underlay, meshd: h.b.mesh4 };
  const pids: Record<string, number[]> = { veth: [], meshd: [ma.pid!, mb.pid!] };
  if (MESHD_B) {
    const pair = await meshdPairB(h, MESHD_B, extra);
    addr['meshd-b'] = pair.addr;
    pids['meshd-b'] = pair.pids;
  }
  if (UPSTREAM !== 'none') {
    pids['wg-upstream'] = await wireguardGoPair(h, { bin: UPSTREAM, suffix: 'u', port: 51822, subnet: 79 });
    addr['wg-upstream'] = '10.79.0.2';
  }
  const paths = Object.keys(addr);
  for (const p of paths) await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', addr[p]]);
  const warm: Record<string, number> = {};
  if (WARM > 0) {
    for (const p of paths.filter((x) => x !== 'veth')) {
      warm[p] = (await iperf3(lab, h.a.ns, h.b.ns, addr[p], WARM, 1)).bitsPerSecond / 1e9;
      process.stderr.write(`warm-up ${p}: ${warm[p].toFixed(2)} Gbit/s for ${WARM} s\n`);
    }
  }
  const rtts: Record<string, number[]> = Object.fromEntries(paths.map((p) => [p, []]));
  const cpu: Record<string, number> = Object.fromEntries(paths.map((p) => [p, 0]));
  const perRound: Record<string, number[]> = Object.fromEntries(paths.map((p) => [p, []]));
  const trace: Record<string, [number, number][]> = Object.fromEntries(paths.map((p) => [p, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of paths) {
      const before = pids[p].map(cpuSeconds);
      const out = await lab.exec(h.a.ns, 'ping', ['-D', '-c', String(PINGS), '-i', INTERVAL, '-W', '2', addr[p]], 10 * 60_000);
      cpu[p] += pids[p].map(cpuSeconds).reduce((x, y, i) => x + y - before[i], 0);
      const xs = [...out.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
      rtts[p].push(...xs);
      for (const m of out.stdout.matchAll(/^\[([\d.]+)\].*time=([\d.]+) ms/gm)) trace[p].push([Math.round((Number(m[1]) - startedAt) * 1000) / 1000, Number(m[2])]);
      const s = summary(xs, PINGS, null);
      perRound[p].push(s.p50);
      process.stderr.write(`round ${r + 1}/${ROUNDS} ${p}: median ${s.p50} ms, mean ${s.mean} ms\n`);
    }
  }
  const result = Object.fromEntries(paths.map((p) => [p, summary(rtts[p], ROUNDS * PINGS, p === 'veth' ? null : cpu[p])]));
  const rss = Object.fromEntries(paths.filter((p) => p !== 'veth').map((p) => [p, pids[p].map((pid) => Math.round(rssMiB(pid)))]));
  process.stdout.write(`ping RTT through each path, ${ROUNDS} interleaved rounds of ${PINGS} pings ${INTERVAL} s apart, ${WARM > 0 ? `after ${WARM} s of TCP through each tunnel` : 'from fresh daemons'} (ms):\n`);
  process.stdout.write(`${'path'.padEnd(12)} ${['mean', 'p10', 'p25', 'p50', 'p75', 'p90', 'p99'].map((k) => k.padStart(7)).join('')}  lost  CPU/ping (both daemons), their RSS at the end\n`);
  for (const p of paths) {
    const s = result[p];
    process.stdout.write(`${p.padEnd(12)} ${[s.mean, s.p10, s.p25, s.p50, s.p75, s.p90, s.p99].map((v) => v.toFixed(3).padStart(7)).join('')}  ${String(s.lost).padStart(4)}  ${s.cpuPerPingUs === null ? '-' : `${s.cpuPerPingUs} µs, RSS ${rss[p].join(' / ')} MiB`}\n`);
  }
  if (result['wg-upstream']) {
    for (const p of paths.filter((x) => x.startsWith('meshd'))) {
      const d = (k: 'p50' | 'mean') => (result[p][k] - result['wg-upstream'][k]).toFixed(3);
      const rounds = perRound[p].map((m, i) => (m - perRound['wg-upstream'][i]).toFixed(3)).join(', ');
      process.stdout.write(`${p} − upstream: median ${d('p50')} ms, mean ${d('mean')} ms; round medians ${rounds}\n`);
    }
  }
  if (TRACE) {
    for (const p of paths.filter((x) => x !== 'veth')) {
      const slow = [...trace[p]].sort((x, y) => y[1] - x[1]).slice(0, 24).sort((x, y) => x[0] - y[0]);
      process.stdout.write(`${p}, slowest pings (s after start: ms): ${slow.map(([at, ms]) => `${at.toFixed(2)}: ${ms}`).join(', ')}\n`);
    }
    for (const [name, d] of [['a', ma], ['b', mb]] as const) {
      const file = join(packageRoot(), 'bench', 'results', `rtt-trace-meshd-${name}.log`);
      writeFileSync(file, d.log.join(''));
      process.stdout.write(`meshd ${name}'s output (with MESHD_NODE_ARGS="--trace-gc" and the like): ${file}\n`);
    }
  }
  const out = { date: new Date().toISOString(), machine: machine(), settings: { rounds: ROUNDS, pings: PINGS, interval: INTERVAL, warmSeconds: WARM, upstream: UPSTREAM, meshdB: MESHD_B }, warmGbps: warm, rttMs: result, roundMediansMs: perRound, rssMiBAtEnd: rss, ...(TRACE ? { pings: trace } : {}) };
  process.stdout.write(`wrote ${writeResult('rtt', out)}\n`);
});
