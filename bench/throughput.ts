// Data-plane benchmark: iperf3 TCP between two network namespaces over raw veth, through meshd and
// through Debian's wireguard-go, interleaved in the same run; at tunnel MTU 1280 and 1420, with 1 and
// 4 streams. Also each daemon's CPU during the runs (and per Gbit/s), and ping RTT through each path
// (5 interleaved rounds of 100 pings at 10 ms intervals).
// Prints a table and writes bench/results/throughput-*.json.
//   BENCH_SECONDS (default 10), BENCH_REPS (default 3), BENCH_MTUS (default "1280,1420"),
//   BENCH_STREAMS (default "1,4"), MESHD_AEAD (default: the fastest available),
//   MESHD_FASTPATH (default on; "off" measures the node:dgram fallback)
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { waitFor } from '../src/lab/netns-lab.js';
import type { Lab } from '../src/lab/netns-lab.js';
import { meshConfig, twoHosts, type Host, type TwoHosts } from '../test/helpers/two-hosts.js';
import { cpuSeconds, iperf3, machine, median, withBenchLab, writeResult } from './common.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const REPS = Number(process.env.BENCH_REPS ?? 3);
const MTUS = (process.env.BENCH_MTUS ?? '1280,1420').split(',').map(Number);
const STREAMS = (process.env.BENCH_STREAMS ?? '1,4').split(',').map(Number);
/** The wireguard-go to compare against: Debian's by default, or e.g. ../shared/bin/wireguard-go-0.0.20250522. */
const WIREGUARD_GO = process.env.BENCH_WIREGUARD_GO ?? 'wireguard-go';
const PINGS = 100;
const RTT_ROUNDS = 5;

type PathName = 'veth' | 'meshd' | 'wireguard-go';

async function wireguardGoPair(h: TwoHosts): Promise<number[]> {
  const { lab } = h;
  const pids: number[] = [];
  const setup = async (self: Host, other: Host) => {
    const iface = `${self.iface}w`;
    mkdirSync('/var/run/wireguard', { recursive: true, mode: 0o755 });
    const p = lab.spawn(self.ns, WIREGUARD_GO, [iface], { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' });
    pids.push(p.pid!);
    if (!(await waitFor(async () => (await lab.run('wg', ['show', iface])).code === 0, 10_000))) throw new Error('wireguard-go did not start');
    const conf = lab.file(
      `${iface}.conf`,
      `[Interface]\nPrivateKey = ${self.keys.priv}\nListenPort = 51821\n[Peer]\nPublicKey = ${other.keys.pub}\nAllowedIPs = 10.78.0.${other.underlay.split('.')[3]}/32\nEndpoint = ${other.underlay}:51821\n`,
    );
    await lab.exec(self.ns, 'wg', ['setconf', iface, conf]);
    await lab.exec(self.ns, 'ip', ['addr', 'add', `10.78.0.${self.underlay.split('.')[3]}/24`, 'dev', iface]);
    await lab.exec(self.ns, 'ip', ['link', 'set', iface, 'up']);
  };
  await setup(h.a, h.b);
  await setup(h.b, h.a);
  return pids;
}

async function setMtu(lab: Lab, h: TwoHosts, mtu: number): Promise<void> {
  for (const host of [h.a, h.b]) {
    for (const dev of [host.iface, `${host.iface}w`]) await lab.exec(host.ns, 'ip', ['link', 'set', dev, 'mtu', String(mtu)]);
  }
}

async function rttMs(lab: Lab, ns: string, addr: string): Promise<number> {
  const r = await lab.exec(ns, 'ping', ['-c', String(PINGS), '-i', '0.01', '-q', '-W', '2', addr], 60_000);
  const m = /= [\d.]+\/([\d.]+)\//.exec(r.stdout);
  return m ? Number(m[1]) : NaN;
}

interface Cell {
  gbps: number[];
  retransmits: number[];
  cpuPercent: number[];
}

async function main(): Promise<void> {
  await withBenchLab(['iperf3', 'wireguard-go', 'wg', 'ping'], async (lab) => {
    const h = await twoHosts(lab);
    const extra = 'MTU = 1420';
    const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: extra })), h.a.iface);
    const mb = await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a, { extraInterface: extra })), h.b.iface);
    const wgPids = await wireguardGoPair(h);
    const pids: Record<PathName, number[]> = { veth: [], meshd: [ma.pid!, mb.pid!], 'wireguard-go': wgPids };
    const addr: Record<PathName, string> = { veth: h.b.underlay, meshd: h.b.mesh4, 'wireguard-go': '10.78.0.2' };
    const aead = (await lab.cli(['status', h.a.iface, '--json'])).code === 0 ? (process.env.MESHD_AEAD ?? 'default (native if built)') : '?';
    for (const a of [h.b.mesh4, '10.78.0.2']) await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', a]);

    const cells: Record<string, Record<PathName, Cell>> = {};
    for (const mtu of MTUS) {
      await setMtu(lab, h, mtu);
      for (const streams of STREAMS) {
        const key = `mtu${mtu}-streams${streams}`;
        const empty = (): Cell => ({ gbps: [], retransmits: [], cpuPercent: [] });
        const row: Record<PathName, Cell> = { veth: empty(), meshd: empty(), 'wireguard-go': empty() };
        cells[key] = row;
        for (let rep = 0; rep < REPS; rep++) {
          for (const p of ['veth', 'meshd', 'wireguard-go'] as PathName[]) {
            const before = pids[p].map(cpuSeconds);
            const started = Date.now();
            const s = await iperf3(lab, h.a.ns, h.b.ns, addr[p], SECONDS, streams);
            const wall = (Date.now() - started) / 1000;
            const used = pids[p].map(cpuSeconds).reduce((x, y, i) => x + y - before[i], 0);
            row[p].gbps.push(s.bitsPerSecond / 1e9);
            row[p].retransmits.push(s.retransmits);
            row[p].cpuPercent.push(pids[p].length ? (100 * used) / wall : 0);
            process.stderr.write(`${key} rep ${rep + 1}/${REPS} ${p}: ${(s.bitsPerSecond / 1e9).toFixed(3)} Gbit/s\n`);
          }
        }
      }
    }
    await setMtu(lab, h, 1420);
    // RTT: RTT_ROUNDS rounds of PINGS pings per path, interleaved; the median of the rounds' averages.
    const rounds: Record<PathName, number[]> = { veth: [], meshd: [], 'wireguard-go': [] };
    for (let r = 0; r < RTT_ROUNDS; r++) for (const p of ['veth', 'meshd', 'wireguard-go'] as PathName[]) rounds[p].push(await rttMs(lab, h.a.ns, addr[p]));
    const rtt: Record<PathName, number> = { veth: median(rounds.veth), meshd: median(rounds.meshd), 'wireguard-go': median(rounds['wireguard-go']) };

    const summary = Object.fromEntries(
      Object.entries(cells).map(([k, row]) => [
        k,
        Object.fromEntries(
          Object.entries(row).map(([p, c]) => {
            const g = median(c.gbps);
            const cpu = median(c.cpuPercent);
            return [p, { medianGbps: g, minGbps: Math.min(...c.gbps), maxGbps: Math.max(...c.gbps), retransmits: c.retransmits, cpuPercentBothDaemons: cpu, cpuPercentPerGbps: g > 0 ? cpu / g : null }];
          }),
        ),
      ]),
    ) as unknown as Record<string, Record<PathName, { medianGbps: number; minGbps: number; maxGbps: number; retransmits: number[]; cpuPercentBothDaemons: number; cpuPercentPerGbps: number | null }>>;
    const offloads = execFileSync('ip', ['netns', 'exec', h.a.ns, 'sh', '-c', `ethtool -k $(ip -o link show type veth | cut -d: -f2 | cut -d@ -f1 | tr -d ' ') 2>/dev/null | grep -E '^(tcp-segmentation-offload|generic-receive-offload|tx-checksumming):' || true`]).toString().trim();
    const result = {
      date: new Date().toISOString(),
      machine: machine(),
      settings: { wireguardGo: WIREGUARD_GO, seconds: SECONDS, reps: REPS, mtus: MTUS, streams: STREAMS, aead, fastPath: process.env.MESHD_FASTPATH ?? 'on', pings: PINGS, rttRounds: RTT_ROUNDS },
      vethOffloads: offloads || 'as the kernel sets them (ethtool not installed to show them)',
      summary,
      rttMs: { ...rtt, rounds, meshdOverheadMs: rtt.meshd - rtt.veth, wireguardGoOverheadMs: rtt['wireguard-go'] - rtt.veth },
    };
    process.stdout.write('\ncase                 path           Gbit/s median (min–max)   CPU % (both daemons)  CPU %/Gbit/s  meshd/wg-go  TCP retransmits\n');
    for (const [k, row] of Object.entries(summary)) {
      for (const p of ['veth', 'meshd', 'wireguard-go'] as PathName[]) {
        const c = row[p];
        const ratio = p === 'meshd' ? (c.medianGbps / row['wireguard-go'].medianGbps).toFixed(2) : '';
        process.stdout.write(
          `${k.padEnd(20)} ${p.padEnd(14)} ${c.medianGbps.toFixed(3).padStart(7)} (${c.minGbps.toFixed(3)}–${c.maxGbps.toFixed(3)})   ${p === 'veth' ? '-'.padStart(6) : c.cpuPercentBothDaemons.toFixed(0).padStart(6)}               ${c.cpuPercentPerGbps === null || p === 'veth' ? '-' : c.cpuPercentPerGbps.toFixed(0)}            ${ratio.padEnd(11)}  ${c.retransmits.join(', ')}\n`,
        );
      }
    }
    process.stdout.write(`ping RTT (median of ${RTT_ROUNDS} rounds of ${PINGS}): veth ${rtt.veth.toFixed(3)} ms, meshd ${rtt.meshd.toFixed(3)} ms (+${(rtt.meshd - rtt.veth).toFixed(3)}), wireguard-go ${rtt['wireguard-go'].toFixed(3)} ms (+${(rtt['wireguard-go'] - rtt.veth).toFixed(3)})\n`);
    process.stdout.write(`wrote ${writeResult('throughput', result)}\n`);
  });
}

void main();
