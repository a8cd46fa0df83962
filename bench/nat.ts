// NAT traversal benchmark: time from both daemons up to the first direct-path reply across two
// endpoint-independent NATs (median of BENCH_RUNS, default 5), with the handshake and disco packet
// counts it took; then birthday probing across one symmetric NAT (eim ⇄ symmetric): over
// BENCH_BIRTHDAY_RUNS (default 20) fresh NAT worlds per budget, the success rate within 15 s, the
// median and p90 time to a direct path, and the probes it took, for the default budget (256 sockets ×
// 1,000 probes) and two others (BENCH_BIRTHDAY_BUDGETS, "sockets×probes,…"). With BENCH_CASES
// "paths" (not in the default "eim,birthday"): TCP through the path each NAT pairing ends on (a
// hole-punched direct path, one found by birthday probing, the relay), BENCH_SECONDS × BENCH_REPS
// per pairing. BENCH_BIRTHDAY_NAT=block:FIRST:SIZE makes the hard side's router a NAT that hands
// out only that block of ports, fully-random inside it, for every mapping (a carrier-grade NAT's
// per-subscriber block; the default, "full", picks from 1024–65535); sequential:FIRST:SIZE:FLOWS one
// that hands out FIRST, FIRST+1, … in order, and FLOWS other flows through it after the hard side's
// STUN mappings and before the hard side may reach the relay (no attempt runs before; the timer
// starts after them). BENCH_MESHD_BIN runs another tree's daemons (an A/B of two commits).
// BENCH_CASES "paired": both sides behind NATs that hand out ports in order (symmetric ⇄ symmetric),
// BENCH_PAIRED_FLOWS other flows through each after the STUN mappings (default 3000), and other hosts
// behind each opening new flows all along at each of BENCH_PAIRED_RATES flows a second (default
// "0,50,200"): BENCH_BIRTHDAY_RUNS worlds per rate, the same figures as the birthday case;
// BENCH_PAIRED_RELAY_DELAY_MS holds the relay's traffic that long each way (a proxy: no netem here).
// Writes bench/results/nat-*.json.
import { Lab, labUnavailable } from '../src/lab/netns-lab.js';
import { iperf3, machine, median as medianOf, writeResult } from './common.js';
import type { NatKind, NatWorld } from '../src/lab/nat-world.js';
import { holdOffRelay, natConfig, natWorld, otherFlows, relayArgs, setPortBlockNat, setSequentialNat, slowRelay, steadyFlows } from '../src/lab/nat-world.js';
import { controlRequest } from '../src/control/control.js';
import type { DaemonStatus } from '../src/daemon/status.js';
import { meetProbability } from '../src/transport/birthday.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const BIRTHDAY_RUNS = Number(process.env.BENCH_BIRTHDAY_RUNS ?? 20);
const BUDGETS = (process.env.BENCH_BIRTHDAY_BUDGETS ?? '256x1000,128x500,512x2000').split(',').map((b) => b.split('x').map(Number) as [number, number]);
const CASES = new Set((process.env.BENCH_CASES ?? 'eim,birthday').split(','));
const BIRTHDAY_LIMIT_MS = 15_000;
/** The hard side's NAT in the birthday case: null for full-range fully-random, else its port block. */
const BIRTHDAY_BLOCK = portBlock(process.env.BENCH_BIRTHDAY_NAT ?? 'full');

function portBlock(spec: string): { order: 'random' | 'sequential'; first: number; size: number; flows: number } | null {
  if (spec === 'full') return null;
  const m = /^(block|sequential):(\d+):(\d+)(?::(\d+))?$/.exec(spec);
  const first = Number(m?.[2]);
  const size = Number(m?.[3]);
  if (!m || first < 1024 || size < 1 || first + size - 1 > 65535 || (m[1] === 'block') !== (m[4] === undefined)) {
    process.stderr.write(`bench: BENCH_BIRTHDAY_NAT must be "full", "block:FIRST:SIZE" or "sequential:FIRST:SIZE:FLOWS" within 1024-65535, not "${spec}"\n`);
    process.exit(2);
  }
  return { order: m[1] === 'block' ? 'random' : 'sequential', first, size, flows: Number(m[4] ?? 0) };
}

function birthdayNatName(): string {
  const b = BIRTHDAY_BLOCK;
  if (!b) return 'eim ⇄ symmetric (nftables masquerade fully-random)';
  const range = `${b.first}-${b.first + b.size - 1}`;
  return b.order === 'random' ? `eim ⇄ symmetric (nftables masquerade fully-random within ports ${range})` : `eim ⇄ symmetric (ports ${range} in order, nftables numgen; ${b.flows} other flows after STUN)`;
}

/** The hard side's NAT as BENCH_BIRTHDAY_NAT asks, before the daemons start. */
async function birthdayNat(w: NatWorld, lab: Lab): Promise<void> {
  const b = BIRTHDAY_BLOCK!;
  if (b.order === 'random') return setPortBlockNat(lab, w.b, b);
  await setSequentialNat(lab, w.b, b);
  if (b.flows > 0) await holdOffRelay(lab, w.b, true);
}

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPS = Number(process.env.BENCH_REPS ?? 2);
const PATH_PAIRINGS: { pairing: [NatKind, NatKind]; via: string }[] = [
  { pairing: ['eim', 'eim'], via: 'hole punching' },
  { pairing: ['eim', 'symmetric'], via: 'birthday probing' },
  { pairing: ['symmetric', 'symmetric'], via: 'relay' },
];

/**
 * A fresh NAT world of `pairing` with its relay and both daemons up (`extra`: config lines for both),
 * removed after `body`.
 */
async function inWorld<T>(
  pairing: [NatKind, NatKind],
  extra: string[],
  body: (w: NatWorld, lab: Lab, logs: () => string) => Promise<T>,
  before?: (w: NatWorld, lab: Lab) => Promise<void>,
): Promise<T> {
  const teardowns: (() => unknown)[] = [];
  const lab = new Lab({ teardown: (fn) => teardowns.push(fn) });
  try {
    const w = await natWorld(lab, pairing);
    await before?.(w, lab);
    await lab.relay(w.relayNs, relayArgs(w));
    const env: Record<string, string> = process.env.BENCH_MESHD_BIN ? { MESHD_BIN: process.env.BENCH_MESHD_BIN } : {};
    const a = await lab.meshd(w.a.ns, lab.file('a.conf', natConfig(w, w.a, w.b, extra)), w.a.iface, env);
    const b = await lab.meshd(w.b.ns, lab.file('b.conf', natConfig(w, w.b, w.a, extra)), w.b.iface, env);
    // Both daemons' disco and path log lines, for a run that did not end as it should.
    const logs = () =>
      ([['A (easy side)', a], ['B', b]] as const)
        .map(([who, p]) => `${who}:\n${p.log.join('').split('\n').filter((l) => /disco|path|birthday/.test(l)).join('\n')}`)
        .join('\n');
    return await body(w, lab, logs);
  } finally {
    for (const f of teardowns) await f();
  }
}

interface PathThroughput {
  pairing: string;
  path: string;
  gbps: number[];
  medianGbps: number;
}

/** TCP through the path a fresh world of each pairing settles on. */
async function pathThroughput(): Promise<PathThroughput[]> {
  const out: PathThroughput[] = [];
  for (const { pairing, via } of PATH_PAIRINGS) {
    const r = await inWorld(pairing, [], async (w, lab) => {
      const pinger = lab.spawn(w.a.ns, 'ping', ['-i', '0.2', '-W', '1', w.b.mesh4]);
      const st = async () => (await controlRequest(w.a.iface, { cmd: 'status' })) as DaemonStatus;
      type Path = DaemonStatus['peers'][number]['path'];
      const how = (p: Path): string => (p.kind === 'direct' ? (p.via ?? 'hole punching') : p.kind);
      const settled = (p: Path) => how(p) === via;
      const up = Date.now();
      let path = (await st()).peers[0].path;
      while (!settled(path) && Date.now() - up < 30_000) {
        await new Promise((res) => setTimeout(res, 100));
        path = (await st()).peers[0].path;
      }
      pinger.kill();
      if (!settled(path)) throw new Error(`${pairing.join(' ⇄ ')}: no ${via} path in 30 s (${how(path)})`);
      const gbps: number[] = [];
      for (let k = 0; k < REPS; k++) gbps.push((await iperf3(lab, w.a.ns, w.b.ns, w.b.mesh4, SECONDS)).bitsPerSecond / 1e9);
      return { pairing: pairing.join(' ⇄ '), path: `${how(path)}, then ${how((await st()).peers[0].path)}`, gbps, medianGbps: medianOf(gbps) };
    });
    out.push(r);
    process.stderr.write(`paths ${r.pairing}: ${r.path}, TCP ${r.gbps.map((g) => g.toFixed(3)).join(', ')} Gbit/s\n`);
  }
  return out;
}

interface BirthdayRun {
  ms: number | null;
  easyProbes: number;
  hardSockets: number;
  attempts: number;
}

/** One fresh eim ⇄ symmetric world with the given budget: time to a direct path by probing (null: none in 15 s). */
async function birthdayRun(sockets: number, probes: number): Promise<BirthdayRun> {
  return inWorld(['eim', 'symmetric'], [`HardNatSockets = ${sockets}`, `HardNatProbesPerAttempt = ${probes}`], async (w, lab, logs) => {
    if (BIRTHDAY_BLOCK?.flows) {
      // Other hosts behind the NAT take ports after the hard side's STUN mappings were made.
      for (let i = 0; i < 150 && ((await controlRequest(w.b.iface, { cmd: 'status' })) as DaemonStatus).natMappingVariesByDestination !== true; i++) await new Promise((res) => setTimeout(res, 100));
      await otherFlows(lab, w.b, w.relayAddrs[0], BIRTHDAY_BLOCK.flows);
      await holdOffRelay(lab, w.b, false);
    }
    const up = Date.now();
    // Traffic makes the peer active (probing runs only for peers with traffic on the relay).
    const pinger = lab.spawn(w.a.ns, 'ping', ['-i', '0.2', '-W', '1', w.b.mesh4]);
    const st = async (iface: string) => (await controlRequest(iface, { cmd: 'status' })) as DaemonStatus;
    let ms: number | null = null;
    while (Date.now() - up < BIRTHDAY_LIMIT_MS) {
      const [a, b] = [await st(w.a.iface), await st(w.b.iface)];
      if (a.peers[0].path.kind === 'direct' && a.peers[0].path.via === 'birthday probing' && b.peers[0].path.kind === 'direct') {
        ms = Date.now() - up;
        break;
      }
      await new Promise((res) => setTimeout(res, 20));
    }
    pinger.kill();
    const [a, b] = [await st(w.a.iface), await st(w.b.iface)];
    if (ms === null) {
      const announced = b.endpoints.map((e) => e.endpoint).join(', ');
      process.stderr.write(`birthday: no direct path in ${BIRTHDAY_LIMIT_MS} ms; paths ${JSON.stringify(a.peers[0].path)} / ${JSON.stringify(b.peers[0].path)}; B announced ${announced}\n${logs()}\n`);
    }
    return { ms, easyProbes: a.counters.birthdayProbesSent ?? 0, hardSockets: b.counters.birthdaySocketsOpened ?? 0, attempts: a.counters.birthdayAttempts ?? 0 };
  }, BIRTHDAY_BLOCK ? birthdayNat : undefined);
}

const PAIRED_FLOWS = Number(process.env.BENCH_PAIRED_FLOWS ?? 3000);
const PAIRED_RATES = (process.env.BENCH_PAIRED_RATES ?? '0,50,200').split(',').map(Number);
const PAIRED_RELAY_DELAY_MS = Number(process.env.BENCH_PAIRED_RELAY_DELAY_MS ?? 0);

interface PairedRun {
  ms: number | null;
  probes: [number, number];
  attempts: [number, number];
}

/**
 * One fresh world, both sides behind NATs that count their ports up: A's from 20000, B's from
 * 40000. The daemons learn their STUN mappings without a relay; PAIRED_FLOWS other flows move both
 * counters on; then they may reach the relay, and `rate` new flows a second keep moving them. The
 * timer starts when the relay is let through.
 */
async function pairedRun(rate: number): Promise<PairedRun> {
  const before = async (w: NatWorld, lab: Lab) => {
    await setSequentialNat(lab, w.a, { first: 20000, size: 8192 });
    await setSequentialNat(lab, w.b, { first: 40000, size: 8192 });
    await holdOffRelay(lab, w.a, true);
    await holdOffRelay(lab, w.b, true);
    if (PAIRED_RELAY_DELAY_MS > 0) slowRelay(w, PAIRED_RELAY_DELAY_MS); // killed with the lab
  };
  return inWorld(['symmetric', 'symmetric'], [], async (w, lab, logs) => {
    const st = async (iface: string) => (await controlRequest(iface, { cmd: 'status' })) as DaemonStatus;
    for (let i = 0; i < 150 && !((await st(w.a.iface)).natPortsInOrder && (await st(w.b.iface)).natPortsInOrder); i++) await new Promise((res) => setTimeout(res, 100));
    await Promise.all([otherFlows(lab, w.a, w.relayAddrs[0], PAIRED_FLOWS), otherFlows(lab, w.b, w.relayAddrs[0], PAIRED_FLOWS)]);
    const steady = rate > 0 ? [steadyFlows(lab, w.a, w.relayAddrs[0], rate), steadyFlows(lab, w.b, w.relayAddrs[0], rate)] : [];
    await holdOffRelay(lab, w.a, false);
    await holdOffRelay(lab, w.b, false);
    const up = Date.now();
    const pinger = lab.spawn(w.a.ns, 'ping', ['-i', '0.2', '-W', '1', w.b.mesh4]);
    let ms: number | null = null;
    while (Date.now() - up < BIRTHDAY_LIMIT_MS) {
      const [a, b] = [await st(w.a.iface), await st(w.b.iface)];
      const viaProbing = (p: DaemonStatus['peers'][number]['path']) => p.kind === 'direct' && p.via === 'birthday probing';
      if (viaProbing(a.peers[0].path) && viaProbing(b.peers[0].path)) {
        ms = Date.now() - up;
        break;
      }
      await new Promise((res) => setTimeout(res, 20));
    }
    pinger.kill();
    for (const p of steady) p.kill();
    const [a, b] = [await st(w.a.iface), await st(w.b.iface)];
    if (ms === null) process.stderr.write(`paired: no direct path in ${BIRTHDAY_LIMIT_MS} ms; paths ${JSON.stringify(a.peers[0].path)} / ${JSON.stringify(b.peers[0].path)}\n${logs()}\n`);
    return { ms, probes: [a.counters.birthdayProbesSent ?? 0, b.counters.birthdayProbesSent ?? 0], attempts: [a.counters.birthdayAttempts ?? 0, b.counters.birthdayAttempts ?? 0] };
  }, before);
}

async function pairedBench(): Promise<unknown[]> {
  const out = [];
  for (const rate of PAIRED_RATES) {
    const runs: PairedRun[] = [];
    for (let i = 0; i < BIRTHDAY_RUNS; i++) {
      const r = await pairedRun(rate);
      process.stderr.write(`paired, ${rate} flows/s, run ${i + 1}/${BIRTHDAY_RUNS}: ${r.ms === null ? 'no direct path in 15 s' : `direct after ${r.ms} ms`}, probes ${r.probes.join(' + ')}, attempts ${r.attempts.join(' / ')}\n`);
      runs.push(r);
    }
    const met = runs.filter((r) => r.ms !== null);
    const times = met.map((r) => r.ms!).sort((x, y) => x - y);
    out.push({
      otherFlowsPerSecond: rate,
      successRate: met.length / runs.length,
      timeToDirectMs: { median: pct(times, 0.5), p90: pct(times, 0.9) },
      probesPerSuccess: met.length ? Math.round(met.reduce((n, r) => n + r.probes[0] + r.probes[1], 0) / met.length) : null,
      runs,
    });
  }
  return out;
}

const pct = (sorted: number[], q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : null);

async function birthdayBench(): Promise<unknown[]> {
  const out = [];
  for (const [sockets, probes] of BUDGETS) {
    const runs: BirthdayRun[] = [];
    for (let i = 0; i < BIRTHDAY_RUNS; i++) {
      const r = await birthdayRun(sockets, probes);
      process.stderr.write(`birthday ${sockets}×${probes} run ${i + 1}/${BIRTHDAY_RUNS}: ${r.ms === null ? 'no direct path in 15 s' : `direct after ${r.ms} ms`}, ${r.easyProbes} probes, ${r.hardSockets} sockets\n`);
      runs.push(r);
    }
    const met = runs.filter((r) => r.ms !== null);
    const times = met.map((r) => r.ms!).sort((x, y) => x - y);
    out.push({
      budget: { sockets, probesPerAttempt: probes },
      expectedPerAttempt: Number(meetProbability(sockets, probes).toFixed(4)),
      successRate: met.length / runs.length,
      timeToDirectMs: { median: pct(times, 0.5), p90: pct(times, 0.9) },
      probesPerSuccess: met.length ? Math.round(met.reduce((n, r) => n + r.easyProbes, 0) / met.length) : null,
      socketsPerSuccess: met.length ? Math.round(met.reduce((n, r) => n + r.hardSockets, 0) / met.length) : null,
      runs,
    });
  }
  return out;
}

async function oneRun(): Promise<{ ms: number; a: Record<string, number>; b: Record<string, number> }> {
  return inWorld(['eim', 'eim'], [], async (w) => {
    const up = Date.now();
    // The first direct-path packet is the first pong over the punched path: status shows the path
    // as direct from that moment. Poll both sides every 10 ms.
    const direct = async (iface: string) => ((await controlRequest(iface, { cmd: 'status' })) as DaemonStatus).peers[0].path.kind === 'direct';
    for (;;) {
      if ((await direct(w.a.iface)) && (await direct(w.b.iface))) break;
      if (Date.now() - up > 60_000) throw new Error('no direct path within 60 s');
      await new Promise((res) => setTimeout(res, 10));
    }
    const ms = Date.now() - up;
    const a = ((await controlRequest(w.a.iface, { cmd: 'status' })) as DaemonStatus).counters;
    const b = ((await controlRequest(w.b.iface, { cmd: 'status' })) as DaemonStatus).counters;
    return { ms, a, b };
  });
}

async function main(): Promise<void> {
  const why = labUnavailable(['nft', 'conntrack', 'openssl']);
  if (why) {
    process.stderr.write(`bench: cannot run: ${why}\n`);
    process.exit(1);
  }
  const runs = [];
  for (let i = 0; i < (CASES.has('eim') ? RUNS : 0); i++) {
    const r = await oneRun();
    process.stderr.write(`run ${i + 1}/${RUNS}: first direct reply after ${r.ms} ms\n`);
    runs.push(r);
  }
  const sorted = runs.map((r) => r.ms).sort((x, y) => x - y);
  const median = sorted[Math.floor(sorted.length / 2)] ?? null;
  const birthday = CASES.has('birthday') ? await birthdayBench() : [];
  const paths = CASES.has('paths') ? await pathThroughput() : [];
  const paired = CASES.has('paired') ? await pairedBench() : [];
  const result = {
    date: new Date().toISOString(),
    machine: machine(),
    settings: { runs: RUNS, nat: 'both endpoint-independent (nftables masquerade)', measuredFrom: 'both daemons up (control sockets answering)' },
    timeToFirstDirectMs: { median, min: sorted[0], max: sorted[sorted.length - 1], all: runs.map((r) => r.ms) },
    packetCountsAtFirstDirect: runs.map((r) => ({ alice: r.a, bob: r.b })),
    birthday: { nat: birthdayNatName(), runsPerBudget: BIRTHDAY_RUNS, limitMs: BIRTHDAY_LIMIT_MS, budgets: birthday },
    pathThroughput: { seconds: SECONDS, reps: REPS, paths },
    paired: { nat: `symmetric ⇄ symmetric, both handing out ports in order (nftables numgen); ${PAIRED_FLOWS} other flows each after STUN`, relayDelayMsEachWay: PAIRED_RELAY_DELAY_MS, runsPerRate: BIRTHDAY_RUNS, limitMs: BIRTHDAY_LIMIT_MS, rates: paired },
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  writeResult('nat', result);
}

void main();
