// The daemon's heap after start-up (src/daemon/heap-trim.ts): it gives its start-up and warm-up
// garbage back once, when the tunnel has been quiet for 3 s after the warm-up, and V8's memory reducer (compacting GCs that stop
// the daemon for 6–22 ms each, ~8 s after its last start-up GC, whatever the tunnel carries) is off,
// as bin/meshd.js starts it. A second daemon started with V8's reducer back on leaves trimming to V8.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { meshConfig, twoHosts } from '../helpers/two-hosts.js';
import { blockDirectUdp, promMetric, relayArgs, relayConfig, relayLab, relayUrl, RELAY_PORT } from '../helpers/relay-lab.js';

const why = labUnavailable(['ping', 'curl', 'nft', 'openssl']);
const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

interface ReduceGc {
  atMs: number;
  committedBeforeMb: number;
  committedAfterMb: number;
  own: boolean;
}

/**
 * Compacting GCs in a --trace-gc log of a daemon whose V8 reducer is off, where only the daemon's own
 * trim starts one: the first, and those within 3 s of it (a second follows when the first freed
 * much), are that trim; any later one is not.
 */
function reduceGcs(log: string): ReduceGc[] {
  const gcs = [...log.matchAll(/(\d+) ms: Mark-Compact \(reduce\) [\d.]+ \(([\d.]+)\) -> [\d.]+ \(([\d.]+)\) MB[^\n]*/g)].map((m) => ({
    atMs: Number(m[1]),
    committedBeforeMb: Number(m[2]),
    committedAfterMb: Number(m[3]),
  }));
  const trimAt = gcs[0]?.atMs ?? NaN;
  return gcs.map((g) => ({ ...g, own: g.atMs - trimAt < 3000 }));
}

if (why) t.plan(0, why);
else {
  t.test('a daemon trims its heap once after start-up when its peer pauses, and V8 never stops it', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: 'MetricsListen = 127.0.0.1:9588' })), h.a.iface, { MESHD_NODE_ARGS: '--trace-gc' });
    await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a)), h.b.iface, { MESHD_NODE_ARGS: '--memory-reducer' });
    type St = { counters: Record<string, number> };
    const counters = async (iface: string) => (JSON.parse((await lab.cli(['status', iface, '--json'])).stdout) as St).counters;

    t.ok(cmdline(ma.pid!).includes('--no-memory-reducer'), "a runs with V8's reducer off, as bin/meshd.js's line starts it");
    const pings = async (rounds: number) => {
      for (let i = 0; i < rounds; i++) {
        t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '100', '-i', '0.02', '-W', '2', h.b.mesh4])).code, 0, 'pings through the tunnel');
      }
    };
    // Peers talking from the start, for 12 s: longer than V8's reducer waits after the start-up's
    // last compacting GC (8 s), so with it on, a would show one; and the trim waits for a pause.
    await pings(6);
    const quietFrom = Date.now(); // the last ping's answer has just come
    t.equal((await counters(h.a.iface)).heapTrims, 0, 'a: no trim while its peer talks to it, from the start');
    t.ok(await waitFor(async () => (await counters(h.a.iface)).heapTrims === 1, 15_000), 'a: one trim once the tunnel is quiet');
    const after = Date.now() - quietFrom;
    t.ok(after >= 2800, `not before 3 s of quiet (${after} ms)`);
    t.ok(await waitFor(() => reduceGcs(ma.log.join('')).some((g) => g.own), 5000), 'a: its compacting GC is in the trace');
    const trim = reduceGcs(ma.log.join('')).filter((g) => g.own);
    t.ok(trim.length >= 1 && trim.length <= 2, `a: ${trim.length} GCs for the trim (a second one when the first freed much)`);
    t.ok(trim[trim.length - 1].committedAfterMb < trim[0].committedBeforeMb, `a: the heap's committed memory went from ${trim[0].committedBeforeMb} to ${trim[trim.length - 1].committedAfterMb} MB`);

    await pings(3);
    const others = reduceGcs(ma.log.join('')).filter((g) => !g.own);
    t.same(others, [], "a: no compacting GC but its own trim, before it or since (V8's reducer is off)");
    t.equal((await counters(h.a.iface)).heapTrims, 1, 'a: still one trim (a ping every 20 ms grows nothing)');
    t.equal((await counters(h.b.iface)).heapTrims, undefined, 'b, with V8\'s reducer on: leaves trimming to V8, and says nothing about it');
    const metrics = (await lab.exec(h.a.ns, 'curl', ['-sf', '--max-time', '5', 'http://127.0.0.1:9588/metrics'])).stdout;
    t.match(metrics, /^meshd_heap_trims_total 1$/m, 'a: the trim in its metrics');
  });

  t.test('the relay trims its own heap when idle, and V8 does not stop the streams it carries', async (t) => {
    const lab = new Lab(t);
    const rl = await relayLab(lab, 1);
    await blockDirectUdp(rl);
    const relay = await lab.relay(rl.relayNs[0], relayArgs(rl, 0, false), ['--trace-gc']);
    t.ok(cmdline(relay.pid!).includes('--no-memory-reducer'), "the relay runs with V8's reducer off, as bin/meshd-relay.js's line starts it");
    const trims = async () => promMetric((await lab.exec(rl.a.ns, 'curl', ['-sf', '--max-time', '5', `http://${rl.relayAddr[0]}:${RELAY_PORT}/metrics`])).stdout, 'meshd_relay_heap_trims_total');
    t.ok(await waitFor(async () => (await trims()) === 1, 15_000), 'one trim of its own, 3 s after start-up with nothing to forward');
    t.ok(await waitFor(() => reduceGcs(relay.log.join('')).some((g) => g.own), 5000), 'its compacting GC is in the trace');
    const trim = reduceGcs(relay.log.join('')).filter((g) => g.own);
    t.ok(trim[trim.length - 1].committedAfterMb < trim[0].committedBeforeMb, `committed memory ${trim[0].committedBeforeMb} → ${trim[trim.length - 1].committedAfterMb} MB`);

    // 12 s of relayed pings: past the 8 s V8's reducer waits after a compacting GC.
    const url = relayUrl(rl, 0, false);
    await lab.meshd(rl.a.ns, lab.file('a.conf', relayConfig(rl, rl.a, rl.b, [url])), rl.a.iface);
    await lab.meshd(rl.b.ns, lab.file('b.conf', relayConfig(rl, rl.b, rl.a, [url])), rl.b.iface);
    t.ok(await waitFor(async () => (await lab.exec(rl.a.ns, 'ping', ['-c', '1', '-W', '1', rl.b.mesh4])).code === 0, 15_000), 'A and B connected via the relay');
    for (let i = 0; i < 6; i++) {
      t.equal((await lab.exec(rl.a.ns, 'ping', ['-c', '100', '-i', '0.02', '-W', '2', rl.b.mesh4])).code, 0, 'pings through the relay');
    }
    t.same(reduceGcs(relay.log.join('')).filter((g) => !g.own), [], "no compacting GC but its own trim (V8's reducer is off)");
    t.equal(await trims(), 1, 'still one trim');
  });
}
