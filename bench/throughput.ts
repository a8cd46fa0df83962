// Data-plane benchmark: two network namespaces over raw veth, through meshd, through upstream
// wireguard-go (the 2025 build with batching and offloads) and through Debian's wireguard-go
// (0.0.20220316), interleaved in the same run, so every ratio compares figures taken minutes apart.
// Cases:
//   tcp    iperf3 TCP at tunnel MTU 1280 and 1420, 1 and 4 streams
//   loss   the same at MTU 1420 with 1 % of tunnel datagrams dropped at random (nftables numgen,
//          both directions; this kernel has no netem)
//   udp    iperf3 UDP, 1,392-byte datagrams offered at 1 Gbit/s (MTU 1420): what arrives, and loss
//   small  iperf3 UDP, 64-byte payloads as fast as the client sends: datagrams per second arriving
//   gso    bulk UDP as QUIC stacks send it (bench/common.ts udpGso): 1,392-byte datagrams, 40 per
//          UDP_SEGMENT send, as fast as one socket sends; received with UDP_GRO: what arrives, and loss
//   loaded ping 10 ms apart through the same path while one iperf3 TCP stream fills it (MTU 1420):
//          the RTT's median, 99th percentile and largest (queueing and pauses under load), and
//          what the stream moved; not in the default list
// plus each daemon pair's CPU (user+system, during its runs; per Gbit/s) and ping RTT through each
// path (20 interleaved rounds of 100 pings at 10 ms intervals, and of 1,000 at 1 ms; meshd − upstream per
// round, its median and a 95 % interval for that median), and each pair's memory at the end (resident and
// largest). Prints tables, writes bench/results/throughput-*.json.
//   BENCH_SECONDS (default 10), BENCH_REPS (default 3), BENCH_MTUS (default "1280,1420"),
//   BENCH_STREAMS (default "1,4"), BENCH_CASES (default "tcp,loss,udp,small,gso"; also "loaded"; "none"
//   measures RTT only),
//   BENCH_RTT_ROUNDS (default 20: the per-round difference from upstream moves by ±0.1 ms, so it takes
//   about 20 rounds to tell a few hundredths of a millisecond from nothing),
//   BENCH_WIREGUARD_GO_UPSTREAM (default ../shared/bin/wireguard-go-0.0.20250522 when it exists;
//   BENCH_WIREGUARD_GO is the older name), BENCH_WIREGUARD_GO_DEBIAN (default "wireguard-go" on PATH;
//   "none" leaves one out), MESHD_AEAD, MESHD_FASTPATH ("off" measures the node:dgram fallback),
//   BENCH_MESHD_B: a second meshd pair, interleaved with the first, whose daemons get these
//   space-separated VAR=value settings (MESHD_NODE_ARGS among them: its node flags), e.g.
//   "MESHD_AEAD_THREADS=2", "MESHD_NODE_ARGS=--use-largepages=on" or "MESHD_BIN=/other/tree/bin/meshd.js"
//   (another commit's build): an A/B within one run
import { execFileSync } from 'node:child_process';
import { sleep, type Lab } from '../src/lab/netns-lab.js';
import { meshConfig, twoHosts, type TwoHosts } from '../test/helpers/two-hosts.js';
import { cpuSeconds, iperf3, iperf3Udp, udpGso, machine, median, medianInterval, peakRssMiB, percentile, rssMiB, withBenchLab, writeResult } from './common.js';
import { meshdBFromEnv, meshdPairB, MESHD_B_PORT, MESHD_B_SUFFIX, wireguardGoPair, type WgBuild, upstreamWireguardGo } from './pairs.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const MTUS = (process.env.BENCH_MTUS ?? '1280,1420').split(',').map(Number);
const STREAMS = (process.env.BENCH_STREAMS ?? '1,4').split(',').map(Number);
const CASES = new Set((process.env.BENCH_CASES ?? 'tcp,loss,udp,small,gso').split(','));
const LOSS_PER_MILLE = 10;
const PINGS = 100;
const RTT_ROUNDS = Number(process.env.BENCH_RTT_ROUNDS ?? 20);

const UPSTREAM = upstreamWireguardGo(process.env.BENCH_WIREGUARD_GO);
const DEBIAN = process.env.BENCH_WIREGUARD_GO_DEBIAN ?? 'wireguard-go';

type PathName = 'veth' | 'meshd' | 'meshd-b' | 'wg-upstream' | 'wg-debian';

const MESHD_B = meshdBFromEnv();

interface Build extends WgBuild {
  path: PathName;
}

const BUILDS: Build[] = [
  { path: 'wg-upstream' as const, bin: UPSTREAM, suffix: 'u', port: 51822, subnet: 79 },
  { path: 'wg-debian' as const, bin: DEBIAN, suffix: 'w', port: 51821, subnet: 78 },
].filter((b) => b.bin !== 'none' && b.bin !== '');

function version(bin: string): string {
  try {
    return execFileSync(bin, ['--version'], { timeout: 5000 }).toString().trim().split('\n')[0];
  } catch {
    return '?';
  }
}

async function setMtu(lab: Lab, h: TwoHosts, mtu: number): Promise<void> {
  for (const host of [h.a, h.b]) {
    for (const dev of [host.iface, ...(MESHD_B ? [`${host.iface}${MESHD_B_SUFFIX}`] : []), ...BUILDS.map((b) => `${host.iface}${b.suffix}`)]) await lab.exec(host.ns, 'ip', ['link', 'set', dev, 'mtu', String(mtu)]);
  }
}

/** Drops LOSS_PER_MILLE ‰ of the tunnels' UDP datagrams arriving in each namespace (null: removes it). */
async function setLoss(lab: Lab, h: TwoHosts, perMille: number | null): Promise<void> {
  const ports = [51820, ...(MESHD_B ? [MESHD_B_PORT] : []), ...BUILDS.map((b) => b.port)].join(', ');
  for (const host of [h.a, h.b]) {
    await lab.run('ip', ['netns', 'exec', host.ns, 'nft', 'delete', 'table', 'inet', 'benchloss']);
    if (perMille === null) continue;
    const rules = lab.file(
      `loss-${host.ns}.nft`,
      `table inet benchloss {\n  chain input {\n    type filter hook input priority -10; policy accept;\n    udp dport { ${ports} } numgen random mod 1000 < ${perMille} counter drop\n  }\n}\n`,
    );
    await lab.exec(host.ns, 'nft', ['-f', rules]);
  }
}

/** meshd's RTT minus upstream's, round by round (each pair taken seconds apart); null without upstream. */
function intervalOf(d: number[] | null): ReturnType<typeof medianInterval> {
  return d ? medianInterval(d) : null;
}

function signed(x: number): string {
  return `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;
}

function excessOverUpstream(rounds: Partial<Record<PathName, number[]>>, path: PathName = 'meshd'): number[] | null {
  const up = rounds['wg-upstream'];
  return up && rounds[path] ? rounds[path].map((m, i) => m - up[i]) : null;
}

/** Every reply's RTT of `count` pings `interval` s apart (lost ones left out). */
async function pingRtts(lab: Lab, ns: string, addr: string, interval: string, count: number): Promise<number[]> {
  const r = await lab.exec(ns, 'ping', ['-c', String(count), '-i', interval, '-W', '2', addr], count * 1000 * Number(interval) + 30_000);
  return [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

/** One iperf3 TCP stream with pings 10 ms apart through the same path from its second half-second to its end. */
async function loadedRun(lab: Lab, h: TwoHosts, addr: string): Promise<{ sample: Awaited<ReturnType<typeof iperf3>>; rtts: number[] }> {
  const pings = Math.max(10, Math.floor((SECONDS - 1) * 100));
  // iperf3() waits 300 ms for its server, then the stream ramps up: the pings start 1 s in.
  const [sample, rtts] = await Promise.all([iperf3(lab, h.a.ns, h.b.ns, addr, SECONDS, 1), sleep(1000).then(() => pingRtts(lab, h.a.ns, addr, '0.01', pings))]);
  return { sample, rtts };
}

interface LoadedRtt {
  pings: number;
  p50: number;
  p99: number;
  max: number;
}

function loadedRtt(rtts: number[]): LoadedRtt {
  const s = [...rtts].sort((x, y) => x - y);
  return { pings: s.length, p50: percentile(s, 50), p99: percentile(s, 99), max: s[s.length - 1] };
}

async function rttMs(lab: Lab, ns: string, addr: string, interval: string): Promise<number> {
  const r = await lab.exec(ns, 'ping', ['-c', String(interval === '0.001' ? PINGS * 10 : PINGS), '-i', interval, '-q', '-W', '2', addr], 60_000);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return m ? Number(m[1]) : NaN;
}

interface Cell {
  /** Gbit/s arriving (TCP goodput, or UDP payload). */
  gbps: number[];
  /** UDP: datagrams per second arriving, and loss. */
  pps: number[];
  lostPercent: number[];
  retransmits: number[];
  cpuPercent: number[];
  /** loaded: every ping's RTT, all reps together. */
  rtts: number[];
}

type CaseKind = 'tcp' | 'udp' | 'small' | 'gso' | 'loaded';

interface Case {
  key: string;
  kind: CaseKind;
  mtu: number;
  streams: number;
  loss: boolean;
}

function cases(): Case[] {
  const out: Case[] = [];
  if (CASES.has('tcp')) for (const mtu of MTUS) for (const streams of STREAMS) out.push({ key: `tcp-mtu${mtu}-streams${streams}`, kind: 'tcp', mtu, streams, loss: false });
  if (CASES.has('loss')) for (const streams of STREAMS) out.push({ key: `tcp-mtu1420-streams${streams}-loss1%`, kind: 'tcp', mtu: 1420, streams, loss: true });
  if (CASES.has('udp')) out.push({ key: 'udp-mtu1420-1392B-at-1G', kind: 'udp', mtu: 1420, streams: 1, loss: false });
  if (CASES.has('small')) out.push({ key: 'udp-mtu1420-64B-flood', kind: 'small', mtu: 1420, streams: 1, loss: false });
  if (CASES.has('gso')) out.push({ key: 'udp-mtu1420-1392B-gso-flood', kind: 'gso', mtu: 1420, streams: 1, loss: false });
  if (CASES.has('loaded')) out.push({ key: 'ping-under-tcp-mtu1420', kind: 'loaded', mtu: 1420, streams: 1, loss: false });
  return out;
}

async function main(): Promise<void> {
  await withBenchLab(['iperf3', 'wg', 'ping', 'nft', ...(CASES.has('gso') ? ['python3'] : []), ...BUILDS.map((b) => b.bin)], async (lab) => {
    const h = await twoHosts(lab);
    const extra = 'MTU = 1420';
    const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: extra })), h.a.iface);
    const mb = await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a, { extraInterface: extra })), h.b.iface);
    const paths: PathName[] = ['veth', 'meshd', ...(MESHD_B ? ['meshd-b' as const] : []), ...BUILDS.map((b) => b.path)];
    const pids: Partial<Record<PathName, number[]>> = { veth: [], meshd: [ma.pid!, mb.pid!] };
    const addr: Partial<Record<PathName, string>> = { veth: h.b.underlay, meshd: h.b.mesh4 };
    if (MESHD_B) {
      const pair = await meshdPairB(h, MESHD_B, extra);
      pids['meshd-b'] = pair.pids;
      addr['meshd-b'] = pair.addr;
    }
    for (const b of BUILDS) {
      pids[b.path] = await wireguardGoPair(h, b);
      addr[b.path] = `10.${b.subnet}.0.2`;
    }
    const status = await lab.cli(['status', h.a.iface, '--json']);
    const aead = status.code === 0 ? (process.env.MESHD_AEAD ?? 'default (native if built)') : '?';
    for (const p of paths) await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', addr[p]!]);

    const cells: Record<string, Partial<Record<PathName, Cell>>> = {};
    let mtuNow = 0;
    for (const c of cases()) {
      if (c.mtu !== mtuNow) await setMtu(lab, h, (mtuNow = c.mtu));
      await setLoss(lab, h, c.loss ? LOSS_PER_MILLE : null);
      const row: Partial<Record<PathName, Cell>> = {};
      cells[c.key] = row;
      // With loss, raw veth has no tunnel to lose datagrams of: it is left out.
      const here = c.loss ? paths.filter((p) => p !== 'veth') : paths;
      for (const p of here) row[p] = { gbps: [], pps: [], lostPercent: [], retransmits: [], cpuPercent: [], rtts: [] };
      for (let rep = 0; rep < REPS; rep++) {
        for (const p of here) {
          const before = pids[p]!.map(cpuSeconds);
          const started = Date.now();
          const cell = row[p]!;
          if (c.kind === 'tcp') {
            const s = await iperf3(lab, h.a.ns, h.b.ns, addr[p]!, SECONDS, c.streams);
            cell.gbps.push(s.bitsPerSecond / 1e9);
            cell.retransmits.push(s.retransmits);
          } else if (c.kind === 'loaded') {
            const { sample, rtts } = await loadedRun(lab, h, addr[p]!);
            cell.gbps.push(sample.bitsPerSecond / 1e9);
            cell.retransmits.push(sample.retransmits);
            cell.rtts.push(...rtts);
          } else if (c.kind === 'gso') {
            const s = await udpGso(lab, h.a.ns, h.b.ns, addr[p]!, SECONDS, c.mtu - 28);
            cell.gbps.push(s.bitsPerSecond / 1e9);
            cell.pps.push(s.packetsPerSecond);
            cell.lostPercent.push(s.lostPercent);
          } else {
            const s = await iperf3Udp(lab, h.a.ns, h.b.ns, addr[p]!, SECONDS, c.kind === 'udp' ? c.mtu - 28 : 64, c.kind === 'udp' ? '1G' : '0');
            cell.gbps.push(s.bitsPerSecond / 1e9);
            cell.pps.push(s.packetsPerSecond);
            cell.lostPercent.push(s.lostPercent);
          }
          const wall = (Date.now() - started) / 1000;
          const used = pids[p]!.map(cpuSeconds).reduce((x, y, i) => x + y - before[i], 0);
          cell.cpuPercent.push(pids[p]!.length ? (100 * used) / wall : 0);
          const shown = c.kind === 'small' ? `${(cell.pps.at(-1)! / 1000).toFixed(0)}k datagrams/s` : `${cell.gbps.at(-1)!.toFixed(3)} Gbit/s${c.kind === 'loaded' ? `, ${cell.rtts.length} pings so far` : ''}`;
          process.stderr.write(`${c.key} rep ${rep + 1}/${REPS} ${p}: ${shown}\n`);
        }
      }
    }
    await setLoss(lab, h, null);
    await setMtu(lab, h, 1420);
    // RTT: RTT_ROUNDS rounds of PINGS pings per path at 10 ms intervals (each packet wakes the
    // daemons from idle), interleaved; the median of the rounds' averages. Then 10 × PINGS at 1 ms.
    const rttAt = async (interval: string) => {
      const rounds: Partial<Record<PathName, number[]>> = {};
      for (const p of paths) rounds[p] = [];
      for (let r = 0; r < RTT_ROUNDS; r++) for (const p of paths) rounds[p]!.push(await rttMs(lab, h.a.ns, addr[p]!, interval));
      return { rounds, rtt: Object.fromEntries(paths.map((p) => [p, median(rounds[p]!)])) as Record<PathName, number> };
    };
    const { rounds, rtt } = await rttAt('0.01');
    const fast = await rttAt('0.001');
    const summary: Record<string, Record<string, { medianGbps: number; minGbps: number; maxGbps: number; medianPps: number | null; lostPercent: number[]; retransmits: number[]; cpuPercentBothDaemons: number; cpuPercentPerGbps: number | null; loadedRttMs: LoadedRtt | null }>> = {};
    for (const [k, row] of Object.entries(cells)) {
      summary[k] = {};
      for (const [p, c] of Object.entries(row)) {
        const g = median(c.gbps);
        const cpu = median(c.cpuPercent);
        summary[k][p] = {
          medianGbps: g,
          minGbps: Math.min(...c.gbps),
          maxGbps: Math.max(...c.gbps),
          medianPps: c.pps.length ? median(c.pps) : null,
          lostPercent: c.lostPercent,
          retransmits: c.retransmits,
          cpuPercentBothDaemons: cpu,
          cpuPercentPerGbps: g > 0 ? cpu / g : null,
          loadedRttMs: c.rtts.length ? loadedRtt(c.rtts) : null,
        };
      }
    }
    // Memory after every case and the RTT rounds, per daemon pair (sum of both daemons).
    const memory = Object.fromEntries(
      paths.filter((p) => pids[p]!.length).map((p) => [p, { rssMiB: pids[p]!.reduce((a, pid) => a + rssMiB(pid), 0), peakRssMiB: pids[p]!.reduce((a, pid) => a + peakRssMiB(pid), 0) }]),
    );
    const offloads = execFileSync('ip', ['netns', 'exec', h.a.ns, 'sh', '-c', `ethtool -k $(ip -o link show type veth | cut -d: -f2 | cut -d@ -f1 | tr -d ' ') 2>/dev/null | grep -E '^(tcp-segmentation-offload|generic-receive-offload|tx-checksumming):' || true`]).toString().trim();
    const builds = Object.fromEntries(BUILDS.map((b) => [b.path, { bin: b.bin, version: version(b.bin) }]));
    const result = {
      date: new Date().toISOString(),
      machine: machine(),
      settings: { builds, meshdB: MESHD_B, seconds: SECONDS, reps: REPS, mtus: MTUS, streams: STREAMS, cases: [...CASES], lossPerMille: LOSS_PER_MILLE, aead, fastPath: process.env.MESHD_FASTPATH ?? 'on', pings: PINGS, rttRounds: RTT_ROUNDS },
      vethOffloads: offloads || 'as the kernel sets them (ethtool not installed to show them)',
      summary,
      memoryBothDaemons: memory,
      rttMs: { ...rtt, rounds, overheadMs: Object.fromEntries(paths.filter((p) => p !== 'veth').map((p) => [p, rtt[p] - rtt.veth])), meshdMinusUpstreamPerRound: excessOverUpstream(rounds), meshdMinusUpstreamInterval: intervalOf(excessOverUpstream(rounds)), meshdBMinusUpstreamPerRound: excessOverUpstream(rounds, 'meshd-b') },
      rttMs1msInterval: { ...fast.rtt, rounds: fast.rounds, overheadMs: Object.fromEntries(paths.filter((p) => p !== 'veth').map((p) => [p, fast.rtt[p] - fast.rtt.veth])), meshdMinusUpstreamPerRound: excessOverUpstream(fast.rounds), meshdMinusUpstreamInterval: intervalOf(excessOverUpstream(fast.rounds)), meshdBMinusUpstreamPerRound: excessOverUpstream(fast.rounds, 'meshd-b') },
    };
    for (const b of BUILDS) process.stdout.write(`${b.path}: ${b.bin} (${builds[b.path].version})\n`);
    if (MESHD_B) process.stdout.write(`meshd-b: meshd with ${Object.entries(MESHD_B).map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
    process.stdout.write('\ncase                                path          figure (median, min–max)            CPU % both  CPU %/Gbit/s  ×upstream  ×debian  retransmits / loss %\n');
    for (const [k, row] of Object.entries(summary)) {
      for (const [p, c] of Object.entries(row)) {
        const small = k.includes('64B');
        const fig = small ? `${((c.medianPps ?? 0) / 1000).toFixed(0)}k datagrams/s`.padEnd(34) : `${c.medianGbps.toFixed(3)} Gbit/s (${c.minGbps.toFixed(3)}–${c.maxGbps.toFixed(3)})`.padEnd(34);
        const value = (x: (typeof row)[string] | undefined) => (x ? (small ? (x.medianPps ?? 0) : x.medianGbps) : 0);
        const ratio = (other: string) => ((p === 'meshd' || p === 'meshd-b') && row[other] && value(row[other]) > 0 ? (value(c) / value(row[other])).toFixed(2) : '');
        const extra = c.retransmits.length ? c.retransmits.join(', ') : c.lostPercent.map((x) => x.toFixed(2)).join(', ');
        process.stdout.write(
          `${k.padEnd(35)} ${p.padEnd(13)} ${fig}  ${p === 'veth' ? '-'.padStart(6) : c.cpuPercentBothDaemons.toFixed(0).padStart(6)}      ${c.cpuPercentPerGbps === null || p === 'veth' ? '-'.padEnd(6) : c.cpuPercentPerGbps.toFixed(0).padEnd(6)}        ${ratio('wg-upstream').padEnd(9)}  ${ratio('wg-debian').padEnd(7)}  ${extra}\n`,
        );
      }
    }
    for (const [k, row] of Object.entries(summary)) {
      for (const [p, c] of Object.entries(row)) {
        const l = c.loadedRttMs;
        if (l) process.stdout.write(`${k} ${p}: ping RTT under the stream, ${l.pings} pings: median ${l.p50.toFixed(3)} ms, p99 ${l.p99.toFixed(3)}, largest ${l.max.toFixed(3)}\n`);
      }
    }
    process.stdout.write(`memory, both daemons (MiB, resident now / largest): ${Object.entries(memory).map(([p, m]) => `${p} ${m.rssMiB.toFixed(0)} / ${m.peakRssMiB.toFixed(0)}`).join(', ')}\n`);
    const line = (r: Record<PathName, number>) => paths.map((p) => `${p} ${r[p].toFixed(3)} ms${p === 'veth' ? '' : ` (+${(r[p] - r.veth).toFixed(3)})`}`).join(', ');
    // Upstream's own figure moves by tenths of a millisecond between runs on this VM; what compares
    // meshd with it is the difference within each round (taken seconds apart), and its median.
    const excess = (rs: Partial<Record<PathName, number[]>>) =>
      (['meshd', 'meshd-b'] as const)
        .map((p) => {
          const d = excessOverUpstream(rs, p);
          if (!d) return '';
          const m = median(d);
          const ci = medianInterval(d);
          // Whether the rounds show meshd's RTT no larger than upstream's: the interval's top at or below 0.
          const said = ci ? `, ${(ci.coverage * 100).toFixed(0)} % interval ${signed(ci.low)}…${signed(ci.high)}: ${ci.high <= 0 ? 'no larger than upstream' : ci.low > 0 ? 'larger than upstream' : 'not told apart from upstream'}` : '';
          return `; ${p} − upstream per round: ${d.map((x) => x.toFixed(3)).join(', ')} (median ${signed(m)} ms${said})`;
        })
        .join('');
    if (RTT_ROUNDS > 0) {
      process.stdout.write(`ping RTT, 10 ms apart (median of ${RTT_ROUNDS} rounds of ${PINGS}): ${line(rtt)}${excess(rounds)}\n`);
      process.stdout.write(`ping RTT, 1 ms apart (median of ${RTT_ROUNDS} rounds of ${PINGS * 10}): ${line(fast.rtt)}${excess(fast.rounds)}\n`);
    }
    process.stdout.write(`wrote ${writeResult('throughput', result)}\n`);
  });
}

void main();
