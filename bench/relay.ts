// Relay benchmarks (results in bench/results/relay-*.json, quoted in docs/performance.md):
//  1. iperf3 TCP between two meshd hosts, interleaved in one run: direct (UDP), then forced through
//     one meshd-relay over TLS (wss) and over plain ws; CPU of the relay and of both daemons.
//  2. First reply after a fresh start, per NAT pairing (median of BENCH_STARTS starts).
//  3. Forwarding capacity: 100 client pairs pushing through one relay process (single-packet
//     messages and batches), messages/s, Gbit/s and the relay's CPU.
//  4. Idle capacity: RSS of one relay holding N logged-in clients.
//  5. Relayed idle pings (BENCH_ONLY=rtt): a fresh relay and two fresh daemons with direct UDP blocked,
//     BENCH_RTT_PINGS pings 10 ms apart (default 4,500: past the ~8 s after start-up when V8's memory
//     reducer first runs), per round; percentiles, the pings over 8 ms with when they came, and the
//     relay's GC pauses (it runs with --trace-gc). BENCH_RELAY_B (node flags, e.g.
//     "--no-memory-reducer") adds rounds with a relay started with them, interleaved; BENCH_RTT_ROUNDS (2);
//     BENCH_TRACE=1 writes the relay's and the daemons' output of each round to bench/results/.
// BENCH_SECONDS (5), BENCH_REPS (2), BENCH_STARTS (10), BENCH_PAIRINGS ("udp-blocked:udp-blocked,..."),
// BENCH_PAIRS (100), BENCH_RELAY_CLIENTS ("1000,5000,10000"), BENCH_ONLY (comma list of
// throughput,first-reply,forwarding,idle,rtt; rtt is not in the default list).
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exited, Lab, sleep, waitFor } from '../src/lab/netns-lab.js';
import { packageRoot } from '../src/package-root.js';
import type { NatKind } from '../src/lab/nat-world.js';
import { firstReply, freshStart } from '../src/lab/first-reply.js';
import { cpuSeconds, iperf3, machine, median, rssMiB, withBenchLab, writeResult } from './common.js';
import { blockDirectUdp, relayArgs, relayConfig, relayLab, relayUrl, RELAY_PORT, type RelayLab } from '../test/helpers/relay-lab.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPS = Number(process.env.BENCH_REPS ?? 2);
const STARTS = Number(process.env.BENCH_STARTS ?? 10);
const PAIRINGS = (process.env.BENCH_PAIRINGS ?? 'udp-blocked:udp-blocked,symmetric:symmetric,eim:symmetric,udp-blocked:eim,eim:eim,leaky:eim,leaky:leaky')
  .split(',')
  .map((p) => p.split(':') as [NatKind, NatKind]);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 100);
const CLIENT_COUNTS = (process.env.BENCH_RELAY_CLIENTS ?? '1000,5000,10000').split(',').map(Number);
const RTT_PINGS = Number(process.env.BENCH_RTT_PINGS ?? 4500);
const RTT_ROUNDS = Number(process.env.BENCH_RTT_ROUNDS ?? 2);
const RELAY_B = (process.env.BENCH_RELAY_B ?? '').split(' ').filter(Boolean);
const ONLY = new Set((process.env.BENCH_ONLY ?? 'throughput,first-reply,forwarding,idle').split(','));
const CLIENTS_JS = join(packageRoot(), 'dist', 'bench', 'relay-clients.js');
const LOAD_JS = join(packageRoot(), 'dist', 'bench', 'relay-load.js');
const WS_PORT = 8080;
const MTU = 1420;

type PathName = 'direct' | 'relay-wss' | 'relay-ws';
interface Sample {
  gbps: number;
  retransmits: number;
  cpuPercent: { relay: number; sender: number; receiver: number };
}

/** SIGTERM to each, one at a time, each waited for. */
async function stopAll(procs: ChildProcess[]): Promise<void> {
  for (const p of procs) {
    const gone = exited(p);
    p.kill('SIGTERM');
    await gone;
  }
}

/** (Re)starts both daemons for one path and waits until the peer's traffic takes it. */
async function daemonsFor(lab: Lab, rl: RelayLab, path: PathName, running: ChildProcess[]): Promise<ChildProcess[]> {
  await stopAll(running);
  const url = path === 'relay-ws' ? `ws://${rl.relayAddr[0]}:${WS_PORT}/` : relayUrl(rl, 0, true);
  const extra = `MTU = ${MTU}`;
  const conf = (self: RelayLab['a'], other: RelayLab['a']) => relayConfig(rl, self, other, [url], { tls: true, endpoint: true }).replace('[Interface]', `[Interface]\n${extra}`);
  const a = await lab.meshd(rl.a.ns, lab.file('a.conf', conf(rl.a, rl.b)), rl.a.iface);
  const b = await lab.meshd(rl.b.ns, lab.file('b.conf', conf(rl.b, rl.a)), rl.b.iface);
  const want = path === 'direct' ? 'direct' : 'relay';
  const kind = async () => JSON.parse((await lab.cli(['status', rl.a.iface, '--json'])).stdout).peers[0].path.kind as string;
  await lab.exec(rl.a.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', rl.b.mesh4]);
  if (!(await waitFor(async () => (await kind()) === want, 15_000))) throw new Error(`${path}: the path did not become ${want}`);
  return [a, b];
}

async function setUdpBlocked(rl: RelayLab, blocked: boolean): Promise<void> {
  if (blocked) await blockDirectUdp(rl);
  else for (const h of [rl.a, rl.b]) await rl.lab.exec(h.ns, 'nft', ['delete', 'table', 'inet', 'meshtest']);
}

async function throughput(lab: Lab): Promise<Record<PathName, { medianGbps: number; all: Sample[] }>> {
  const rl = await relayLab(lab, 1);
  const relays = [
    await lab.relay(rl.relayNs[0], relayArgs(rl, 0, true, ['--client-rate', '0'])),
    await lab.relay(rl.relayNs[0], ['--listen', `${rl.relayAddr[0]}:${WS_PORT}`, '--no-stun', '--client-rate', '0']),
  ];
  const relayPid: Record<PathName, number> = { direct: relays[0].pid!, 'relay-wss': relays[0].pid!, 'relay-ws': relays[1].pid! };
  const samples: Record<PathName, Sample[]> = { direct: [], 'relay-wss': [], 'relay-ws': [] };
  let daemons: ChildProcess[] = [];
  let blocked = false;
  for (let rep = 0; rep < REPS; rep++) {
    for (const path of ['direct', 'relay-wss', 'relay-ws'] as PathName[]) {
      if (blocked !== (path !== 'direct')) await setUdpBlocked(rl, (blocked = path !== 'direct'));
      daemons = await daemonsFor(lab, rl, path, daemons);
      const pids = [relayPid[path], daemons[0].pid!, daemons[1].pid!];
      const before = pids.map(cpuSeconds);
      const started = Date.now();
      const s = await iperf3(lab, rl.a.ns, rl.b.ns, rl.b.mesh4, SECONDS);
      const wall = (Date.now() - started) / 1000;
      const pct = pids.map((p, i) => (100 * (cpuSeconds(p) - before[i])) / wall);
      const sample = { gbps: s.bitsPerSecond / 1e9, retransmits: s.retransmits, cpuPercent: { relay: path === 'direct' ? 0 : pct[0], sender: pct[1], receiver: pct[2] } };
      samples[path].push(sample);
      process.stderr.write(`rep ${rep + 1}/${REPS} ${path}: ${sample.gbps.toFixed(3)} Gbit/s, CPU relay ${sample.cpuPercent.relay.toFixed(0)} % sender ${pct[1].toFixed(0)} % receiver ${pct[2].toFixed(0)} %, ${s.retransmits} retransmits\n`);
    }
  }
  for (const p of [...daemons, ...relays]) p.kill('SIGTERM');
  return Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, { medianGbps: median(v.map((s) => s.gbps)), all: v }])) as Record<PathName, { medianGbps: number; all: Sample[] }>;
}

async function firstReplies(): Promise<Record<string, { medianMs: number; maxMs: number; all: (number | null)[] }>> {
  const out: Record<string, { medianMs: number; maxMs: number; all: (number | null)[] }> = {};
  for (const pairing of PAIRINGS) {
    const all: (number | null)[] = [];
    for (let i = 0; i < STARTS; i++) {
      const teardowns: (() => unknown)[] = [];
      const lab = new Lab({ teardown: (fn) => teardowns.push(fn) });
      try {
        all.push((await firstReply(await freshStart(lab, pairing))).sinceReadyMs);
      } finally {
        for (const f of teardowns) await f();
      }
    }
    const got = all.filter((x): x is number => x !== null);
    out[pairing.join(' ⇄ ')] = { medianMs: median(got), maxMs: Math.max(...got), all };
    process.stderr.write(`first reply ${pairing.join(' ⇄ ')}: median ${median(got)} ms, max ${Math.max(...got)} ms (${got.length}/${STARTS} answered)\n`);
  }
  return out;
}

interface ForwardingResult {
  pairs: number;
  packetsPerMessage: number;
  packetBytes: number;
  messagesPerSecond: number;
  packetsPerSecond: number;
  gbps: number;
  relayCpuPercent: number;
  relayRssMiB: number;
}

async function forwarding(lab: Lab): Promise<ForwardingResult[]> {
  const ns = await lab.ns('fw');
  const results: ForwardingResult[] = [];
  for (const perMessage of [1, 32]) {
    const relay = await lab.relay(ns, ['--listen', '127.0.0.1:9001', '--no-stun', '--client-rate', '0', '--max-clients', '100000']);
    const load = lab.spawn(ns, process.execPath, [LOAD_JS, 'ws://127.0.0.1:9001/', String(PAIRS), String(SECONDS), String(perMessage), '1400']);
    if (!(await waitFor(() => load.log.join('').includes('ready'), 60_000))) throw new Error(`load did not start: ${load.log.join('')}`);
    const before = cpuSeconds(relay.pid!);
    const metric = async (name: string) => Number(new RegExp(`^${name} (\\d+)`, 'm').exec((await lab.exec(ns, 'curl', ['-s', 'http://127.0.0.1:9001/metrics'])).stdout)?.[1] ?? NaN);
    const m0 = await metric('meshd_relay_messages_forwarded_total');
    const p0 = await metric('meshd_relay_frames_forwarded_total');
    const b0 = await metric('meshd_relay_bytes_forwarded_total');
    const started = Date.now();
    load.kill('SIGUSR1');
    await sleep(SECONDS * 1000);
    const wall = (Date.now() - started) / 1000;
    const cpu = (100 * (cpuSeconds(relay.pid!) - before)) / wall;
    const rss = rssMiB(relay.pid!);
    const m1 = await metric('meshd_relay_messages_forwarded_total');
    const p1 = await metric('meshd_relay_frames_forwarded_total');
    const b1 = await metric('meshd_relay_bytes_forwarded_total');
    await waitFor(() => load.exitCode !== null, 10_000);
    relay.kill('SIGTERM');
    await waitFor(() => relay.exitCode !== null, 5_000);
    const r: ForwardingResult = {
      pairs: PAIRS,
      packetsPerMessage: perMessage,
      packetBytes: 1400,
      messagesPerSecond: (m1 - m0) / wall,
      packetsPerSecond: (p1 - p0) / wall,
      gbps: ((b1 - b0) * 8) / wall / 1e9,
      relayCpuPercent: cpu,
      relayRssMiB: rss,
    };
    results.push(r);
    process.stderr.write(`forwarding, ${PAIRS} pairs, ${perMessage} × 1400 B per message: ${Math.round(r.messagesPerSecond)} messages/s, ${Math.round(r.packetsPerSecond)} packets/s, ${r.gbps.toFixed(3)} Gbit/s, relay CPU ${cpu.toFixed(0)} %, RSS ${rss.toFixed(0)} MiB\n`);
  }
  return results;
}

async function idle(lab: Lab): Promise<{ baseRssMiB: number; points: { clients: number; loggedIn: number; rssMiB: number; kibPerClient: number }[] }> {
  const ns = await lab.ns('idle');
  const cap = await lab.relay(ns, ['--listen', '127.0.0.1:9000', '--no-stun', '--max-clients', '100000']);
  await sleep(500);
  const base = rssMiB(cap.pid!);
  const points: { clients: number; loggedIn: number; rssMiB: number; kibPerClient: number }[] = [];
  let held = 0;
  let loggedInTotal = 0;
  for (const n of CLIENT_COUNTS) {
    const c = lab.spawn(ns, process.execPath, [CLIENTS_JS, 'ws://127.0.0.1:9000/', String(n - held)]);
    if (!(await waitFor(() => c.log.join('').includes('logged-in'), 300_000, 200))) throw new Error('clients did not log in');
    held = n;
    await sleep(1000);
    const rss = rssMiB(cap.pid!);
    loggedInTotal += Number(/logged-in (\d+)/.exec(c.log.join(''))?.[1]);
    points.push({ clients: n, loggedIn: loggedInTotal, rssMiB: rss, kibPerClient: ((rss - base) * 1024) / n });
    process.stderr.write(`${n} idle clients: relay RSS ${rss.toFixed(1)} MiB, ${(((rss - base) * 1024) / n).toFixed(1)} KiB per client\n`);
  }
  return { baseRssMiB: base, points };
}

interface RelayedPings {
  relayNodeArgs: string[];
  pings: number;
  lost: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** Pings over 8 ms: [seconds since the relay started, ms]. */
  over8ms: [number, number][];
  /** The relay's GCs that paused it 1 ms or more: [ms since it started, kind, pause ms]. */
  relayGcPauses: [number, string, number][];
  /** The same for the two daemons, when MESHD_NODE_ARGS has --trace-gc. */
  daemonGcPauses: [number, string, number][][];
  relayRssMiB: number;
}

/** Pauses of 1 ms or more in a `--trace-gc` log: "[pid:0x…]   24412 ms: Mark-Compact (reduce) 10.2 (13.5) -> … MB, 6.1 / 0.0 ms …". */
function gcPauses(log: string): [number, string, number][] {
  const out: [number, string, number][] = [];
  for (const m of log.matchAll(/^\[[^\]]*\]\s+(\d+) ms: ([A-Za-z-]+(?: \([a-z ]+\))?) .*?MB, ([\d.]+) \/ [\d.]+ ms/gm)) {
    const pause = Number(m[3]);
    if (pause >= 1) out.push([Number(m[1]), m[2], pause]);
  }
  return out;
}

/** One round of relayed idle pings: everything fresh, direct UDP blocked. */
async function relayedPingRound(lab: Lab, rl: RelayLab, relayNodeArgs: string[]): Promise<RelayedPings> {
  const relay = await lab.relay(rl.relayNs[0], relayArgs(rl, 0, true), ['--trace-gc', ...relayNodeArgs]);
  const relayStarted = Date.now() / 1000;
  const url = relayUrl(rl, 0, true);
  const conf = (self: RelayLab['a'], other: RelayLab['a']) => relayConfig(rl, self, other, [url], { tls: true, endpoint: true }).replace('[Interface]', `[Interface]\nMTU = ${MTU}`);
  const a = await lab.meshd(rl.a.ns, lab.file('a.conf', conf(rl.a, rl.b)), rl.a.iface);
  const b = await lab.meshd(rl.b.ns, lab.file('b.conf', conf(rl.b, rl.a)), rl.b.iface);
  await lab.exec(rl.a.ns, 'ping', ['-c', '3', '-i', '0.3', '-W', '3', rl.b.mesh4]);
  const kind = async () => JSON.parse((await lab.cli(['status', rl.a.iface, '--json'])).stdout).peers[0].path.kind as string;
  if (!(await waitFor(async () => (await kind()) === 'relay', 15_000))) throw new Error('the path did not become relay');
  const out = await lab.exec(rl.a.ns, 'ping', ['-D', '-c', String(RTT_PINGS), '-i', '0.01', '-W', '2', rl.b.mesh4], RTT_PINGS * 50 + 60_000);
  const times = [...out.stdout.matchAll(/^\[([\d.]+)\].*time=([\d.]+) ms/gm)].map((m) => [Math.round((Number(m[1]) - relayStarted) * 100) / 100, Number(m[2])] as [number, number]);
  const sorted = times.map((t) => t[1]).sort((x, y) => x - y);
  const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  const relayRssMiB = Math.round(rssMiB(relay.pid!));
  if (process.env.BENCH_TRACE === '1') {
    const tag = `relay-rtt-${relayNodeArgs.join('').replace(/[^a-z]/g, '') || 'installed'}-${Date.now()}`;
    for (const [name, p] of [['relay', relay], ['a', a], ['b', b]] as const) {
      const file = join(packageRoot(), 'bench', 'results', `${tag}-${name}.log`);
      writeFileSync(file, `started ${name === 'relay' ? relayStarted : '?'} (relay started at ${relayStarted})\n${p.log.join('')}`);
      process.stderr.write(`wrote ${file}\n`);
    }
  }
  await stopAll([a, b, relay]);
  return {
    relayNodeArgs,
    pings: RTT_PINGS,
    lost: RTT_PINGS - times.length,
    p50: pct(50),
    p90: pct(90),
    p99: pct(99),
    max: sorted[sorted.length - 1] ?? NaN,
    over8ms: times.filter((t) => t[1] > 8),
    relayGcPauses: gcPauses(relay.log.join('')),
    daemonGcPauses: [a, b].map((d) => gcPauses(d.log.join(''))),
    relayRssMiB,
  };
}

async function relayedPings(lab: Lab): Promise<RelayedPings[]> {
  const rl = await relayLab(lab, 1);
  await blockDirectUdp(rl);
  const rounds: RelayedPings[] = [];
  for (let r = 0; r < RTT_ROUNDS; r++) {
    for (const flags of RELAY_B.length > 0 ? [[], RELAY_B] : [[]]) {
      const x = await relayedPingRound(lab, rl, flags);
      rounds.push(x);
      const list = (p: [number, string, number][]) => p.filter(([, k, ms]) => k !== 'Scavenge' || ms >= 4).map(([at, k, ms]) => `${(at / 1000).toFixed(1)} s ${k} ${ms} ms`).join(', ') || 'none';
      const gcs = list(x.relayGcPauses);
      const daemonGcs = process.env.MESHD_NODE_ARGS?.includes('--trace-gc') ? `; daemons' GC pauses (scavenges of 4 ms or more, any other GC of 1 ms or more): ${x.daemonGcPauses.map(list).join(' / ')}` : '';
      process.stderr.write(
        `relayed pings, round ${r + 1}/${RTT_ROUNDS}, relay ${flags.join(' ') || 'as installed'}: p50 ${x.p50} p90 ${x.p90} p99 ${x.p99} max ${x.max} ms, ${x.lost} lost, ` +
          `${x.over8ms.length} over 8 ms (${x.over8ms.map(([at, ms]) => `${at} s: ${ms}`).join(', ')}); relay GC pauses (scavenges of 4 ms or more, any other GC of 1 ms or more): ${gcs}${daemonGcs}; relay RSS ${x.relayRssMiB} MiB\n`,
      );
    }
  }
  return rounds;
}

async function main(): Promise<void> {
  const result: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: machine(),
    settings: { seconds: SECONDS, reps: REPS, mtu: MTU, starts: STARTS, pairs: PAIRS, relayPort: RELAY_PORT, rttPings: RTT_PINGS, rttRounds: RTT_ROUNDS, relayB: RELAY_B },
  };
  await withBenchLab(['iperf3', 'nft', 'openssl', 'conntrack', 'curl'], async (lab) => {
    if (ONLY.has('throughput')) {
      const tp = await throughput(lab);
      result.throughput = tp;
      result.relayOverDirect = { wss: tp['relay-wss'].medianGbps / tp.direct.medianGbps, ws: tp['relay-ws'].medianGbps / tp.direct.medianGbps };
    }
    if (ONLY.has('first-reply')) result.firstReplyMs = await firstReplies();
    if (ONLY.has('forwarding')) result.forwarding = await forwarding(lab);
    if (ONLY.has('idle')) result.idleCapacity = await idle(lab);
    if (ONLY.has('rtt')) result.relayedPings = await relayedPings(lab);
  });
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  writeResult('relay', result as { date: string });
}

void main();
