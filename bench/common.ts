// What every benchmark shares: a namespace lab (or a clear refusal), iperf3 runs, result files.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { Lab, labUnavailable, sleep } from '../src/lab/netns-lab.js';
import { packageRoot } from '../src/package-root.js';

/** Runs `body` with a fresh lab, removed afterwards; exits 1 when the machine cannot host one. */
export async function withBenchLab(requirements: string[], body: (lab: Lab) => Promise<void>): Promise<void> {
  const why = labUnavailable(requirements);
  if (why) {
    process.stderr.write(`bench: cannot run: ${why}\n`);
    process.exit(1);
  }
  const teardowns: (() => unknown)[] = [];
  const lab = new Lab({ teardown: (fn) => teardowns.push(fn) });
  try {
    await body(lab);
  } finally {
    for (const f of teardowns) await f();
  }
}

export interface IperfSample {
  bitsPerSecond: number;
  retransmits: number;
}

/** One iperf3 TCP run from `client` to `addr` (a one-shot server in `server`), `streams` in parallel. */
export async function iperf3(lab: Lab, client: string, server: string, addr: string, seconds: number, streams = 1): Promise<IperfSample> {
  // iperf3 -J now and then ends a run without its summary ("control socket has closed
  // unexpectedly"): such a run is said on stderr and taken once more, not the whole bench lost.
  for (let attempt = 1; ; attempt++) {
    await lab.exec(server, 'iperf3', ['-s', '-D', '-1']);
    await sleep(300);
    const r = await lab.exec(client, 'iperf3', ['-c', addr, '-t', String(seconds), '-P', String(streams), '-J'], (seconds + 30) * 1000);
    if (r.code !== 0) throw new Error(`iperf3 failed: ${r.stderr || r.stdout.slice(0, 500)}`);
    const j = JSON.parse(r.stdout) as { error?: string; end?: { sum_received?: { bits_per_second: number }; sum_sent?: { retransmits?: number } } };
    const got = j.end?.sum_received;
    if (got) return { bitsPerSecond: got.bits_per_second, retransmits: j.end?.sum_sent?.retransmits ?? 0 };
    if (attempt === 2) throw new Error(`iperf3 to ${addr} gave no summary twice: ${j.error ?? r.stdout.slice(0, 300)}`);
    process.stderr.write(`iperf3 to ${addr} gave no summary (${j.error ?? '?'}): running it once more\n`);
    await sleep(1000);
  }
}

export interface IperfUdpSample {
  /** What arrived, in bits/s of iperf3 payload, and as datagrams per second. */
  bitsPerSecond: number;
  packetsPerSecond: number;
  lostPercent: number;
}

/**
 * One iperf3 UDP run: `payload`-byte datagrams offered at `rate` (iperf3 -b: "1G"; "0" = as fast as
 * the client can send). Received figures are the server's.
 */
export async function iperf3Udp(lab: Lab, client: string, server: string, addr: string, seconds: number, payload: number, rate: string): Promise<IperfUdpSample> {
  await lab.exec(server, 'iperf3', ['-s', '-D', '-1']);
  await sleep(300);
  const r = await lab.exec(client, 'iperf3', ['-c', addr, '-u', '-b', rate, '-l', String(payload), '-t', String(seconds), '-J'], (seconds + 30) * 1000);
  if (r.code !== 0) throw new Error(`iperf3 -u failed: ${r.stderr || r.stdout.slice(0, 500)}`);
  const j = JSON.parse(r.stdout);
  const sum = j.end.sum_received ?? j.end.sum;
  const packets = (sum.packets ?? 0) - (sum.lost_packets ?? 0);
  const secs = sum.seconds || seconds;
  return { bitsPerSecond: sum.bits_per_second, packetsPerSecond: packets / secs, lostPercent: sum.lost_percent ?? 0 };
}

const GSO_SEND = `import socket, sys, time
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
seg = int(sys.argv[3])
s.setsockopt(socket.SOL_UDP, 103, seg)  # UDP_SEGMENT
buf = bytes(seg * 40)
end = time.monotonic() + float(sys.argv[4])
sent = 0
while time.monotonic() < end:
    try:
        s.sendto(buf, (sys.argv[1], int(sys.argv[2])))
        sent += len(buf)
    except OSError:
        pass  # ENOBUFS: the device queue was full; not sent
print(sent)
`;
const GSO_RECV = `import socket, sys, time, json
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_UDP, 104, 1)  # UDP_GRO: a receive may hold many datagrams
s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
s.bind((sys.argv[1], int(sys.argv[2])))
print('listening', flush=True)
s.settimeout(10)
got, first, last = 0, None, None
try:
    while True:
        n = len(s.recv(65535))
        last = time.monotonic()
        if first is None:
            first = last
            s.settimeout(1)
        got += n
except socket.timeout:
    pass
print(json.dumps({'bytes': got, 'seconds': (last - first) if first is not None and last > first else 0}), flush=True)
`;

/**
 * Bulk UDP as QUIC stacks send it: one socket sends 40 `segment`-byte datagrams per `sendto` with
 * UDP_SEGMENT (GSO) for `seconds`, as fast as it can; the receiver reads with UDP_GRO. What arrived
 * per second, and the share of what was sent that did not.
 */
export async function udpGso(lab: Lab, client: string, server: string, addr: string, seconds: number, segment: number, port = 5402): Promise<IperfUdpSample> {
  const rx = lab.spawn(server, 'python3', ['-c', GSO_RECV, addr, String(port)]);
  for (let i = 0; i < 100 && !rx.log.join('').includes('listening'); i++) await sleep(50);
  const tx = await lab.exec(client, 'python3', ['-c', GSO_SEND, addr, String(port), String(segment), String(seconds)], (seconds + 30) * 1000);
  if (tx.code !== 0) throw new Error(`UDP GSO sender failed: ${tx.stderr}`);
  for (let i = 0; i < 100 && rx.exitCode === null; i++) await sleep(50);
  const line = rx.log.join('').split('\n').find((l) => l.startsWith('{'));
  if (!line) throw new Error(`UDP GRO receiver gave nothing: ${rx.log.join('').slice(0, 300)}`);
  const r = JSON.parse(line) as { bytes: number; seconds: number };
  const sent = Number(tx.stdout.trim());
  const secs = r.seconds || seconds;
  return { bitsPerSecond: (8 * r.bytes) / secs, packetsPerSecond: r.bytes / segment / secs, lostPercent: sent > 0 ? Math.max(0, 100 * (1 - r.bytes / sent)) : 0 };
}

/** CPU seconds (user + system, all threads) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export { rssMiB } from '../src/lab/netns-lab.js';

/** The largest resident set a process has had so far (VmHWM), MiB. */
export function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** The `p`th percentile of `sorted` (ascending), nearest rank; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/**
 * A distribution-free interval for the median of `xs` (order statistics, binomial at p = 1/2): the
 * narrowest [x(k), x(n+1−k)] that covers the median with at least `level`; null under 6 samples
 * (x(1)…x(n) covers it only 97 % of the time at n = 6).
 */
export function medianInterval(xs: number[], level = 0.95): { low: number; high: number; coverage: number } | null {
  const n = xs.length;
  if (n < 6) return null;
  const s = [...xs].sort((a, b) => a - b);
  // P(Bin(n, 1/2) <= j), summed as we go.
  const below: number[] = [];
  let term = 0.5 ** n;
  let sum = 0;
  for (let j = 0; j <= n; j++) {
    sum += term;
    below.push(sum);
    term = (term * (n - j)) / (j + 1);
  }
  let k = 1;
  while (k + 1 <= n / 2 && 1 - 2 * below[k] >= level) k++;
  return { low: s[k - 1], high: s[n - k], coverage: 1 - 2 * below[k - 1] };
}

export function machine(): { cpus: number; model: string | undefined; node: string } {
  return { cpus: cpus().length, model: cpus()[0]?.model, node: process.version };
}

/** Writes bench/results/NAME-DATE.json and returns its path. */
export function writeResult(name: string, result: { date: string }): string {
  const dir = join(packageRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${result.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  return file;
}
