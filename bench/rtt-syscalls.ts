// Where an idle ping's round trip goes, system call by system call: `perf record -a` of every
// system call's entry and exit and of the scheduler's wake-ups while pings go through a meshd pair
// and through upstream wireguard-go (after BENCH_WARM s of TCP through each), then each ping
// followed from ping's sendto through both daemons' calls: A's poll return, A's TUN read, A's
// sendmmsg, B's recvmmsg, B's TUN write, B's sendmmsg of the answer, A's recvmmsg, A's TUN write.
// Prints the median of each segment per path. Segments between a daemon's calls are its user-space
// time; the others are the kernel's and the scheduler's. The tracing slows every segment: compare
// the paths' columns, not against bench/rtt.ts.
//   BENCH_PINGS (default 100), BENCH_INTERVAL (ping -i, default 0.02), BENCH_WARM (default 5),
//   BENCH_WIREGUARD_GO_UPSTREAM as in bench/rtt.ts. Needs perf(1).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../src/lab/netns-lab.js';
import { packageRoot } from '../src/package-root.js';
import { meshConfig, twoHosts } from '../test/helpers/two-hosts.js';
import { iperf3, median, withBenchLab, writeResult, machine } from './common.js';
import { wireguardGoPair, upstreamWireguardGo } from './pairs.js';

const PINGS = Number(process.env.BENCH_PINGS ?? 100);
const INTERVAL = process.env.BENCH_INTERVAL ?? '0.02';
const WARM = Number(process.env.BENCH_WARM ?? 5);
const UPSTREAM = upstreamWireguardGo();
const RESULTS = join(packageRoot(), 'bench', 'results');

const NR_READ = 0;
const NR_WRITE = 1;
const NR_WRITEV = 20;
const NR_SENDTO = 44;
const NR_EPOLL_PWAIT = 281;
const NR_RECVMMSG = 299;
const NR_SENDMMSG = 307;

interface Call {
  /** µs */
  t: number;
  pid: number;
  enter: boolean;
  nr: number;
  /** First argument (enter) or return value (exit). */
  arg: number;
}

/** perf script's system-call lines, as calls of the processes in `pids` and of ping. */
function calls(data: string, pids: Set<number>): Call[] {
  const text = execFileSync('perf', ['script', '-i', data, '-F', 'comm,pid,time,event,trace'], { maxBuffer: 1 << 30, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const out: Call[] = [];
  for (const l of text.split('\n')) {
    const m = /^\s*(.+?)\s+(\d+)\s+([\d.]+):\s+raw_syscalls:sys_(enter|exit):\s+NR (\d+) (?:\((\w+)|= (-?\d+))/.exec(l);
    if (!m) continue;
    const pid = Number(m[2]);
    if (!pids.has(pid) && m[1] !== 'ping') continue;
    const enter = m[4] === 'enter';
    out.push({ t: Number(m[3]) * 1e6, pid: m[1] === 'ping' ? -1 : pid, enter, nr: Number(m[5]), arg: enter ? parseInt(m[6], 16) : Number(m[7]) });
  }
  return out;
}

/** The fds a process holds on /dev/net/tun. */
function tunFds(pid: number): Set<number> {
  const fds = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/net/tun') fds.add(Number(fd));
    } catch {
      // closed meanwhile
    }
  }
  return fds;
}

const SEGMENTS = [
  "ping's sendto → A's poll returns",
  'A: poll return → TUN read returns',
  'A: TUN read → sendmmsg (user space)',
  "A's sendmmsg → B's recvmmsg returns",
  'B: recvmmsg → TUN write (user space)',
  "B: TUN write → the answer's sendmmsg",
  "B's sendmmsg → A's recvmmsg returns",
  'A: recvmmsg → TUN write (user space)',
  "ping's sendto → A's TUN write",
] as const;

/** Each ping's segments (µs), found in order; a ping whose chain is not complete is left out. */
function segments(cs: Call[], a: number, b: number, tunA: Set<number>, tunB: Set<number>): number[][] {
  const rows: number[][] = [];
  const find = (from: number, ok: (c: Call) => boolean): number => {
    for (let i = from; i < cs.length; i++) if (ok(cs[i])) return i;
    return -1;
  };
  for (let i = 0; i < cs.length; i++) {
    const c = cs[i];
    if (c.pid !== -1 || !c.enter || c.nr !== NR_SENDTO) continue;
    const chain = [
      (x: Call) => x.pid === a && !x.enter && x.nr === NR_EPOLL_PWAIT && x.arg > 0,
      (x: Call) => x.pid === a && x.enter && x.nr === NR_READ && tunA.has(x.arg),
      (x: Call) => x.pid === a && !x.enter && x.nr === NR_READ && x.arg > 0,
      (x: Call) => x.pid === a && x.enter && x.nr === NR_SENDMMSG,
      (x: Call) => x.pid === b && !x.enter && x.nr === NR_RECVMMSG && x.arg > 0,
      (x: Call) => x.pid === b && x.enter && (x.nr === NR_WRITE || x.nr === NR_WRITEV) && tunB.has(x.arg),
      (x: Call) => x.pid === b && x.enter && x.nr === NR_SENDMMSG,
      (x: Call) => x.pid === a && !x.enter && x.nr === NR_RECVMMSG && x.arg > 0,
      (x: Call) => x.pid === a && x.enter && (x.nr === NR_WRITE || x.nr === NR_WRITEV) && tunA.has(x.arg),
    ];
    const at = [i];
    for (const ok of chain) {
      const j = find(at[at.length - 1] + 1, ok);
      if (j < 0) break;
      at.push(j);
    }
    if (at.length !== chain.length + 1) break;
    const next = find(i + 1, (x) => x.pid === -1 && x.enter && x.nr === NR_SENDTO);
    if (next >= 0 && next < at[at.length - 1]) continue; // the chain ran into the next ping: lost or out of order
    const t = at.map((j) => cs[j].t);
    // t[2] is the TUN read's entry: the read's own time stays in "poll return → TUN read returns".
    rows.push([t[1] - t[0], t[3] - t[1], t[4] - t[3], t[5] - t[4], t[6] - t[5], t[7] - t[6], t[8] - t[7], t[9] - t[8], t[9] - t[0]]);
    i = at[at.length - 1];
  }
  return rows;
}

await withBenchLab(['ping', 'wg', 'perf', ...(WARM > 0 ? ['iperf3'] : []), ...(UPSTREAM !== 'none' ? [UPSTREAM] : [])], async (lab) => {
  mkdirSync(RESULTS, { recursive: true });
  const h = await twoHosts(lab);
  const extra = 'MTU = 1420';
  const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: extra })), h.a.iface);
  const mb = await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a, { extraInterface: extra })), h.b.iface);
  const pids: Record<string, number[]> = { meshd: [ma.pid!, mb.pid!] };
  const addr: Record<string, string> = { meshd: h.b.mesh4 };
  if (UPSTREAM !== 'none') {
    pids['wg-upstream'] = await wireguardGoPair(h, { bin: UPSTREAM, suffix: 'u', port: 51822, subnet: 79 });
    addr['wg-upstream'] = '10.79.0.2';
  }
  const paths = Object.keys(addr);
  for (const p of paths) {
    await lab.exec(h.a.ns, 'ping', ['-c', '2', '-i', '0.2', '-W', '3', addr[p]]);
    if (WARM > 0) await iperf3(lab, h.a.ns, h.b.ns, addr[p], WARM, 1);
  }
  const result: Record<string, Record<string, number>> = {};
  for (const p of paths) {
    const [a, b] = pids[p];
    const data = join(RESULTS, `syscalls-${p}.data`);
    const perf = spawn('perf', ['record', '-q', '-a', '-o', data, '-e', 'raw_syscalls:sys_enter,raw_syscalls:sys_exit,sched:sched_wakeup'], { stdio: 'ignore' });
    await sleep(1500);
    await lab.exec(h.a.ns, 'ping', ['-c', String(PINGS), '-i', INTERVAL, '-W', '2', addr[p]], 10 * 60_000);
    perf.kill('SIGINT');
    await new Promise((r) => perf.once('exit', r));
    const rows = segments(calls(data, new Set([a, b])), a, b, tunFds(a), tunFds(b));
    rmSync(data, { force: true }); // a few hundred MB: every system call on the machine
    result[p] = Object.fromEntries(SEGMENTS.map((s, k) => [s, Math.round(median(rows.map((r) => r[k])))]));
    result[p].pings = rows.length;
  }
  process.stdout.write(`${PINGS} pings ${INTERVAL} s apart${WARM > 0 ? `, after ${WARM} s of TCP through each tunnel` : ''}, under perf: median µs per segment\n`);
  process.stdout.write(`${'segment'.padEnd(40)}${paths.map((p) => p.padStart(13)).join('')}\n`);
  for (const s of [...SEGMENTS, 'pings']) process.stdout.write(`${s.padEnd(40)}${paths.map((p) => String(result[p][s]).padStart(13)).join('')}\n`);
  const out = { date: new Date().toISOString(), machine: machine(), settings: { pings: PINGS, interval: INTERVAL, warmSeconds: WARM, upstream: UPSTREAM }, segmentsUs: result };
  process.stdout.write(`wrote ${writeResult('rtt-syscalls', out)}\n`);
});
