// NAT traversal benchmark: time from both daemons up to the first direct-path reply across two
// endpoint-independent NATs (median of BENCH_RUNS, default 5), with the handshake and disco packet
// counts it took. Writes bench/results/nat-*.json.
import { Lab, labUnavailable } from '../src/lab/netns-lab.js';
import { machine, writeResult } from './common.js';
import { natConfig, natWorld, relayArgs } from '../src/lab/nat-world.js';
import { controlRequest } from '../src/control/control.js';
import type { DaemonStatus } from '../src/daemon/status.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 5);

async function oneRun(): Promise<{ ms: number; a: Record<string, number>; b: Record<string, number> }> {
  const teardowns: (() => unknown)[] = [];
  const lab = new Lab({ teardown: (fn) => teardowns.push(fn) });
  try {
    const w = await natWorld(lab, ['eim', 'eim']);
    await lab.relay(w.relayNs, relayArgs(w));
    await lab.meshd(w.a.ns, lab.file('a.conf', natConfig(w, w.a, w.b)), w.a.iface);
    await lab.meshd(w.b.ns, lab.file('b.conf', natConfig(w, w.b, w.a)), w.b.iface);
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
  } finally {
    for (const f of teardowns) await f();
  }
}

async function main(): Promise<void> {
  const why = labUnavailable(['nft', 'conntrack', 'openssl']);
  if (why) {
    process.stderr.write(`bench: cannot run: ${why}\n`);
    process.exit(1);
  }
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await oneRun();
    process.stderr.write(`run ${i + 1}/${RUNS}: first direct reply after ${r.ms} ms\n`);
    runs.push(r);
  }
  const sorted = runs.map((r) => r.ms).sort((x, y) => x - y);
  const median = sorted[Math.floor(sorted.length / 2)];
  const result = {
    date: new Date().toISOString(),
    machine: machine(),
    settings: { runs: RUNS, nat: 'both endpoint-independent (nftables masquerade)', measuredFrom: 'both daemons up (control sockets answering)' },
    timeToFirstDirectMs: { median, min: sorted[0], max: sorted[sorted.length - 1], all: runs.map((r) => r.ms) },
    packetCountsAtFirstDirect: runs.map((r) => ({ alice: r.a, bob: r.b })),
  };
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  writeResult('nat', result);
}

void main();
