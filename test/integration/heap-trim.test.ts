// The daemon's heap after start-up (src/daemon/heap-trim.ts): it gives its start-up and warm-up
// garbage back once, a second after the warm-up, and V8's memory reducer (three compacting GCs that
// stop the daemon for 6–22 ms each, ~8 s later, whatever the tunnel carries) never runs. Against a
// daemon started with V8's reducer back on, in the same lab: that one shows the reducer's GCs.
import t from 'tap';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { meshConfig, twoHosts } from '../helpers/two-hosts.js';

const why = labUnavailable(['ping', 'curl']);

/**
 * Compacting GCs in a --trace-gc log: the daemon's own trim (the GCs from the first one for "memory
 * pressure" to 3 s later: a second, incremental one follows when the first freed much) and the others,
 * V8's reducer's.
 */
function reduceGcs(log: string): { own: number; reducer: number; lines: string[] } {
  const lines = log.split('\n').filter((l) => /Mark-Compact \(reduce\)/.test(l));
  const ms = (l: string) => Number(/(\d+) ms: Mark-Compact/.exec(l)?.[1] ?? NaN);
  const trimAt = ms(lines.find((l) => /memory pressure/.test(l)) ?? '');
  const own = lines.filter((l) => ms(l) >= trimAt && ms(l) - trimAt < 3000).length;
  return { own, reducer: lines.length - own, lines };
}

if (why) t.plan(0, why);
else {
  t.test('a daemon trims its heap once after start-up, and V8 does not stop it again later', async (t) => {
    const lab = new Lab(t);
    const h = await twoHosts(lab);
    const ma = await lab.meshd(h.a.ns, lab.file('a.conf', meshConfig(h.a, h.b, { extraInterface: 'MetricsListen = 127.0.0.1:9588' })), h.a.iface, { MESHD_NODE_ARGS: '--trace-gc' });
    const mb = await lab.meshd(h.b.ns, lab.file('b.conf', meshConfig(h.b, h.a)), h.b.iface, { MESHD_NODE_ARGS: '--trace-gc --memory-reducer' });
    type St = { counters: Record<string, number> };
    const counters = async (iface: string) => (JSON.parse((await lab.cli(['status', iface, '--json'])).stdout) as St).counters;

    t.ok(await waitFor(async () => (await counters(h.a.iface)).heapTrims === 1, 10_000), 'a: one trim soon after start');
    // Traffic through the tunnel meanwhile (the reducer runs whether or not there is any), two
    // seconds of pings at a time, until V8's reducer has shown itself in b (~8 s after its last
    // start-up GC).
    const started = Date.now();
    let seen = false;
    while (!seen && Date.now() - started < 40_000) {
      t.equal((await lab.exec(h.a.ns, 'ping', ['-c', '100', '-i', '0.02', '-W', '2', h.b.mesh4])).code, 0, 'pings through the tunnel');
      seen = reduceGcs(mb.log.join('')).reducer >= 1;
    }
    t.ok(seen, `b (V8's reducer on): its compacting GCs came, ${((Date.now() - started) / 1000).toFixed(0)} s in`);
    const a = reduceGcs(ma.log.join(''));
    t.equal(a.reducer, 0, `a: no compacting GC of V8's reducer in the same time${a.reducer ? `: ${a.lines.join(' | ')}` : ''}`);
    t.ok(a.own >= 1 && a.own <= 2, `a: its own trim is there (${a.own} GCs: a second one when the first freed much)`);
    t.equal((await counters(h.a.iface)).heapTrims, 1, 'a: still one trim (a ping every 20 ms grows nothing)');
    t.equal((await counters(h.b.iface)).heapTrims, undefined, 'b: leaves trimming to V8, and says nothing about it');
    const metrics = (await lab.exec(h.a.ns, 'curl', ['-sf', '--max-time', '5', 'http://127.0.0.1:9588/metrics'])).stdout;
    t.match(metrics, /^meshd_heap_trims_total 1$/m, 'a: the trim in its metrics');
  });
}
