// Where the slow idle pings' time goes, from the scheduler's side: `perf record` of every CPU
// (sched_switch, sched_wakeup and cpu-clock samples) while a round of pings goes through a fresh
// meshd pair and through upstream wireguard-go, then, per path, the daemons' samples per ping in
// the slow pings against the fast ones, and (BENCH_SHOW=n) the first n slow pings' timelines:
// who woke whom on which CPU and who ran meanwhile. The daemons run with --perf-basic-prof, so
// JavaScript frames have names. A diagnostic, not a figure for docs/performance.md tables: the
// sampling itself slows pings (at 20 kHz, several times more of them are slow).
//   BENCH_PINGS (per round and path, default 400), BENCH_ROUNDS (default 2), BENCH_SLOW_MS (1.5),
//   BENCH_SAMPLE_HZ (cpu-clock, default 5000), BENCH_SHOW (default 0),
//   BENCH_WIREGUARD_GO_UPSTREAM as in bench/rtt.ts. Needs perf(1). perf data: bench/results/sched-*.data.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/package-root.js';
import { meshConfig, twoHosts } from '../test/helpers/two-hosts.js';
import { withBenchLab } from './common.js';
import { wireguardGoPair, upstreamWireguardGo } from './pairs.js';

const PINGS = Number(process.env.BENCH_PINGS ?? 400);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SLOW = Number(process.env.BENCH_SLOW_MS ?? 1.5);
const HZ = process.env.BENCH_SAMPLE_HZ ?? '5000';
const SHOW = Number(process.env.BENCH_SHOW ?? 0);
const UPSTREAM = upstreamWireguardGo();
const RESULTS = join(packageRoot(), 'bench', 'results');

interface Ev {
  comm: string;
  tid: number;
  cpu: number;
  t: number;
  ev: string;
  rest: string;
}
interface Ping {
  sent: number;
  recv: number;
  ms: number;
}

/** perf script's lines, parsed. */
function perfEvents(data: string): Ev[] {
  const text = execFileSync('perf', ['script', '-i', data, '-F', 'cpu,tid,comm,time,event,trace,ip,sym,dso'], { maxBuffer: 1 << 30, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const out: Ev[] = [];
  for (const l of text.split('\n')) {
    const m = /^\s*(\S+)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(?:\d+\s+)?(\S+):\s*(.*)$/.exec(l);
    if (m) out.push({ comm: m[1], tid: Number(m[2]), cpu: Number(m[3]), t: Number(m[4]), ev: m[5].replace(/^sched:/, ''), rest: m[6] });
  }
  return out;
}

/** The daemons' threads: "A:main", "A:1234", "B:main"... */
function threadNames(pids: number[]): Map<number, string> {
  const names = new Map<number, string>();
  pids.forEach((pid, i) => {
    const side = i === 0 ? 'A' : 'B';
    for (const t of readdirSync(`/proc/${pid}/task`)) names.set(Number(t), `${side}:${Number(t) === pid ? 'main' : t}`);
  });
  return names;
}

/** The daemons' cpu-clock samples per ping over a set of pings, by side and symbol, largest first. */
function samplesPerPing(events: Ev[], names: Map<number, string>, pings: Ping[]): [string, number][] {
  const clock = events.filter((x) => x.ev === 'cpu-clock' && names.has(x.tid));
  const agg = new Map<string, number>();
  for (const p of pings) {
    for (const x of clock) {
      if (x.t < p.sent || x.t > p.recv) continue;
      const sym = x.rest.trim().replace(/^[0-9a-f]+\s+/, '').replace(/\+0x[0-9a-f]+/, '').slice(0, 90);
      const key = `${names.get(x.tid)!.slice(0, 1)} ${sym}`;
      agg.set(key, (agg.get(key) ?? 0) + 1);
    }
  }
  return [...agg].map(([k, n]) => [k, n / Math.max(1, pings.length)] as [string, number]).sort((a, b) => b[1] - a[1]);
}

function timeline(events: Ev[], names: Map<number, string>, p: Ping): string {
  const who = (comm: string, tid: number) => names.get(tid) ?? `${comm}/${tid}`;
  const lines = [`-- ping ${p.ms} ms`];
  for (const x of events) {
    if (x.ev === 'cpu-clock' || x.t < p.sent - 0.0002 || x.t > p.recv + 0.0001) continue;
    const rest = x.rest
      .replace(/prev_comm=(\S+) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> next_comm=(\S+) next_pid=(\d+) next_prio=\d+/, (_m, pc: string, pp: string, st: string, nc: string, np: string) => `${who(pc, Number(pp))} [${st}] -> ${who(nc, Number(np))}`)
      .replace(/comm=(\S+) pid=(\d+) prio=\d+ target_cpu=(\d+)/, (_m, c: string, pid: string, cpu: string) => `wakes ${who(c, Number(pid))} on cpu ${Number(cpu)}`);
    lines.push(`   ${((x.t - p.sent) * 1000).toFixed(3).padStart(8)} ms cpu${x.cpu} ${who(x.comm, x.tid).padEnd(16)} ${x.ev} ${rest}`);
  }
  return lines.join('\n');
}

await withBenchLab(['ping', 'wg', 'perf', ...(UPSTREAM !== 'none' ? [UPSTREAM] : [])], async (lab) => {
  mkdirSync(RESULTS, { recursive: true });
  const h = await twoHosts(lab);
  const extra = 'MTU = 1420';
  const env = { MESHD_NODE_ARGS: `${process.env.MESHD_NODE_ARGS ?? ''} --perf-basic-prof`.trim() };
  const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: extra })), h.a.iface, env);
  const mb = await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a, { extraInterface: extra })), h.b.iface, env);
  const addr: Record<string, string> = { meshd: h.b.mesh4 };
  const pids: Record<string, number[]> = { meshd: [ma.pid!, mb.pid!] };
  if (UPSTREAM !== 'none') {
    pids['wg-upstream'] = await wireguardGoPair(h, { bin: UPSTREAM, suffix: 'u', port: 51822, subnet: 79 });
    addr['wg-upstream'] = '10.79.0.2';
  }
  for (const p of Object.keys(addr)) await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', addr[p]]);
  for (let round = 1; round <= ROUNDS; round++) {
    for (const path of Object.keys(addr)) {
      const data = join(RESULTS, `sched-${path}-${round}.data`);
      const offset = Date.now() / 1000 - Number(process.hrtime.bigint()) / 1e9; // realtime − monotonic
      const perf = spawn('perf', ['record', '-q', '-k', 'monotonic', '-e', 'sched:sched_switch', '-e', 'sched:sched_wakeup', '-e', 'cpu-clock', '-F', HZ, '-a', '-o', data], { stdio: 'ignore' });
      const exited = new Promise((r) => perf.on('exit', r));
      await new Promise((r) => setTimeout(r, 500));
      if (perf.exitCode !== null) throw new Error(`perf record exited ${perf.exitCode}`);
      const out = await lab.exec(h.a.ns, 'ping', ['-D', '-c', String(PINGS), '-i', '0.01', '-W', '2', addr[path]], 10 * 60_000);
      perf.kill('SIGINT');
      await exited;
      const pings: Ping[] = [...out.stdout.matchAll(/^\[([\d.]+)\].*time=([\d.]+) ms/gm)].map((m) => {
        const recv = Number(m[1]) - offset;
        return { recv, sent: recv - Number(m[2]) / 1000, ms: Number(m[2]) };
      });
      const events = perfEvents(data);
      const names = threadNames(pids[path]);
      const slow = pings.filter((x) => x.ms > SLOW);
      const fast = pings.filter((x) => x.ms <= 0.8);
      process.stdout.write(`\n== ${path}, round ${round}: ${pings.length} pings, ${slow.length} over ${SLOW} ms, ${fast.length} within 0.8 ms\n`);
      for (const [label, set] of [['slow', slow], ['fast', fast]] as const) {
        const top = samplesPerPing(events, names, set).slice(0, 24);
        process.stdout.write(`${label} pings: the daemons' samples per ping (1 / ${HZ} s each)\n${top.map(([k, n]) => `   ${n.toFixed(2)} ${k}`).join('\n')}\n`);
      }
      for (const p of slow.slice(0, SHOW)) process.stdout.write(`${timeline(events, names, p)}\n`);
    }
  }
});
