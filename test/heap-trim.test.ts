// The daemon's own heap trim (src/daemon/heap-trim.ts): the start-up's garbage, then a heap that has
// grown, each once the tunnel is quiet (or has not been for a minute), never at once; when it is on (V8's memory
// reducer off on the command line, as bin/meshd.js starts it); and the addon's reduceHeap really
// gives a heap's free pages back without throwing away optimised code.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { HeapTrimmer, type HeapTrimLimits } from '../src/daemon/heap-trim.js';
import { ownHeapTrim } from '../src/daemon/v8-tuning.js';
import { shebangFlags } from '../src/ops/systemd.js';

const MB = 1 << 20;
const LIMITS: HeapTrimLimits = { growthBytes: 8 * MB, quietMs: 3000, maxWaitMs: 60_000 };

/** A heap that shrinks to afterReduce at once on a trim (an incremental one: see its own test). */
function fake(startBytes: number) {
  const h = { bytes: startBytes, reduced: 0, afterReduce: 10 * MB };
  const trimmer = new HeapTrimmer({ heapBytes: () => h.bytes, reduce: () => { h.reduced++; h.bytes = h.afterReduce; } }, LIMITS);
  return { h, trimmer };
}

/** Settled and past its first trim (the start-up's garbage), taken at -7 s on a quiet tunnel. */
function trimmedOnce(startBytes: number) {
  const f = fake(startBytes);
  f.trimmer.settle();
  f.trimmer.tick(-10_000, () => 0);
  f.trimmer.tick(-7_000, () => 0);
  return f;
}

/** Ticks every 250 ms with `perTick` bytes moved at each, until a trim (its time) or 120 s (-1). */
function trimUnderTraffic(trimmer: HeapTrimmer, perTick: number): number {
  let traffic = 0;
  for (let ms = 0; ms <= 120_000; ms += 250) {
    traffic += perTick;
    if (trimmer.tick(ms, () => traffic)) return ms;
  }
  return -1;
}

t.test('before the start-up is over, ticks never trim', async (t) => {
  const { h, trimmer } = fake(31 * MB);
  for (let ms = 0; ms < 120_000; ms += 1000) t.equal(trimmer.tick(ms, () => 0), false);
  t.equal(h.reduced, 0);
});

t.test("after start-up, the first trim takes the start-up's garbage once the tunnel is quiet, never at once", async (t) => {
  const { h, trimmer } = fake(31 * MB);
  trimmer.settle();
  t.equal(h.reduced, 0, 'nothing at the settle itself: peers may be talking already');
  t.equal(trimmer.tick(0, () => 0), false);
  t.equal(trimmer.tick(2750, () => 0), false, '2.75 s quiet');
  t.equal(trimmer.tick(3000, () => 0), true, '3 s quiet: trimmed');
  t.equal(trimmer.trims, 1);
  t.equal(h.bytes, 10 * MB);
  t.equal(trimmer.tick(10_000, () => 0), false, 'and not again');
});

t.test('a small start-up heap still gets its first trim (garbage, not growth, is what is due)', async (t) => {
  const { h, trimmer } = fake(12 * MB);
  trimmer.settle();
  trimmer.tick(0, () => 0);
  t.equal(trimmer.tick(3000, () => 0), true);
  t.equal(h.reduced, 1);
});

t.test('the first trim waits for talking peers to pause, or a minute', async (t) => {
  const { h, trimmer } = fake(31 * MB);
  trimmer.settle();
  // A ping every tick from the start: never 3 s quiet.
  t.equal(trimUnderTraffic(trimmer, 84), 60_000, 'a minute after the start-up');
  t.equal(h.reduced, 1);
  const q = fake(31 * MB);
  q.trimmer.settle();
  let moved = 0;
  let at = -1;
  for (let ms = 0; ms <= 10_000 && at < 0; ms += 250) {
    if (ms < 2000) moved += 84; // talking for 2 s, then quiet
    if (q.trimmer.tick(ms, () => moved)) at = ms;
  }
  t.equal(at, 4750, '3 s after the last packet (seen at the 1.75 s tick)');
});

t.test('a heap within the growth allowance is left alone, however quiet the tunnel', async (t) => {
  const { h, trimmer } = trimmedOnce(31 * MB);
  h.bytes = 10 * MB + 8 * MB - 1;
  let trimmed = 0;
  for (let ms = 0; ms < 300_000; ms += 1000) if (trimmer.tick(ms, () => 5)) trimmed++;
  t.equal(trimmed, 0, 'five minutes of quiet ticks');
  let reads = 0;
  trimmer.tick(300_000, () => ++reads);
  t.equal(reads, 0, 'the traffic counter is not even read (a sum over every peer)');
  t.equal(h.reduced, 1);
});

t.test('a grown heap is trimmed once the tunnel has moved nothing for quietMs', async (t) => {
  const { h, trimmer } = trimmedOnce(31 * MB);
  let traffic = 0;
  // A burst: traffic every tick, the heap grows.
  let trimmed = 0;
  for (let ms = 0; ms <= 10_000; ms += 250) {
    traffic += 1e6;
    h.bytes = Math.min(40 * MB, h.bytes + MB);
    if (trimmer.tick(ms, () => traffic)) trimmed++;
  }
  t.equal(trimmed, 0, 'no trim during 10 s of traffic');
  // Quiet from 10 s: the counter stops moving.
  t.equal(trimmer.tick(11_000, () => traffic), false, '1 s quiet');
  t.equal(trimmer.tick(12_750, () => traffic), false, '2.75 s quiet');
  t.equal(trimmer.tick(13_000, () => traffic), true, '3 s quiet: trimmed');
  t.equal(h.reduced, 2);
  t.equal(trimmer.tick(20_000, () => traffic), false, 'and not again while the heap stays small');
  t.equal(h.reduced, 2);
});

t.test('under traffic that never stops, a grown heap is trimmed after maxWaitMs', async (t) => {
  const { h, trimmer } = trimmedOnce(31 * MB);
  h.bytes = 30 * MB;
  t.equal(trimUnderTraffic(trimmer, 1000), 60_000, 'a minute after the growth was first seen');
});

t.test('a heap that shrinks back by itself resets the wait', async (t) => {
  const { h, trimmer } = trimmedOnce(31 * MB);
  let traffic = 0;
  h.bytes = 30 * MB;
  let trimmed = 0;
  for (let ms = 0; ms < 50_000; ms += 1000) if (trimmer.tick(ms, () => (traffic += 1))) trimmed++;
  t.equal(trimmed, 0, '50 s grown, under traffic');
  h.bytes = 12 * MB; // a regular GC gave it back
  t.equal(trimmer.tick(50_000, () => (traffic += 1)), false);
  h.bytes = 30 * MB;
  t.equal(trimmer.tick(51_000, () => (traffic += 1)), false);
  t.equal(trimmer.tick(100_000, () => (traffic += 1)), false, 'the minute counts from the new growth');
  t.equal(trimmer.tick(111_000, () => (traffic += 1)), true);
});

t.test('an incremental trim that frees the heap a few ticks later is not repeated', async (t) => {
  const h = { bytes: 31 * MB, reduced: 0 };
  const trimmer = new HeapTrimmer({ heapBytes: () => h.bytes, reduce: () => { h.reduced++; } }, LIMITS);
  trimmer.settle();
  t.equal(trimmer.tick(0, () => 1), false);
  t.equal(trimmer.tick(3000, () => 1), true, 'the first trim: started');
  // Marking runs over the next turns: the heap is still 31 MB at the next ticks, then shrinks.
  t.equal(trimmer.tick(3250, () => 1), false, 'no second trim while the first is under way');
  t.equal(trimmer.tick(3500, () => 1), false);
  h.bytes = 11 * MB;
  t.equal(trimmer.tick(6000, () => 1), false);
  h.bytes = 18 * MB; // 7 MB over the smallest since the trim: not yet worth one
  t.equal(trimmer.tick(20_000, () => 1), false);
  h.bytes = 19 * MB + 1;
  t.equal(trimmer.tick(21_000, () => 1), false, 'grown by the allowance over the smallest heap since: quiet counts from now');
  t.equal(trimmer.tick(24_000, () => 1), true, 'and 3 s later, trimmed again');
  t.equal(h.reduced, 2);
});

t.test('the daemon trims itself exactly when V8\'s memory reducer is off at start', async (t) => {
  t.equal(ownHeapTrim([], {}), false, 'plain node: V8 trims');
  t.equal(ownHeapTrim(['--no-memory-reducer'], {}), true);
  t.equal(ownHeapTrim(['--no_memory_reducer'], {}), true, 'V8 spells flags with either');
  t.equal(ownHeapTrim(['--no-memory-reducer', '--memory-reducer'], {}), false, 'the last flag wins');
  t.equal(ownHeapTrim([], { NODE_OPTIONS: '--max-old-space-size=100 --no-memory-reducer' }), true, 'NODE_OPTIONS too');
  t.equal(ownHeapTrim(['--memory-reducer'], { NODE_OPTIONS: '--no-memory-reducer' }), false, 'the command line comes after NODE_OPTIONS');
  const bin = new URL('../../bin/meshd.js', import.meta.url).pathname;
  t.ok(shebangFlags(bin).includes('--no-memory-reducer'), 'bin/meshd.js starts the daemon that way');
  t.ok(shebangFlags(new URL('../../bin/meshd-wireguard.js', import.meta.url).pathname).includes('--no-memory-reducer'), 'and meshd-wireguard');
  t.match(readFileSync(bin, 'utf8').split('\n', 1)[0], /^#!\/usr\/bin\/env -S node /);
});

t.test('reduceHeap gives a heap of garbage back, at once or over the next turns, and keeps optimised code', async (t) => {
  const native = new URL('../src/tun/native.js', import.meta.url).href;
  const code = `
    const { loadNative } = await import(${JSON.stringify(native)});
    const { getHeapStatistics } = await import('node:v8');
    const addon = loadNative();
    function hot(x) { return x * 2 + 1; }
    for (let i = 0; i < 1e6; i++) hot(i);
    %OptimizeFunctionOnNextCall(hot); hot(1);
    const keep = [];
    const fill = () => { for (let r = 0; r < 20; r++) { const junk = []; for (let i = 0; i < 100000; i++) junk.push({ a: i, b: 'x' + i }); keep.push(junk.slice(0, 100)); } };
    fill();
    const before = getHeapStatistics().total_heap_size;
    addon.reduceHeap(true);
    const after = getHeapStatistics().total_heap_size;
    const optimised = (%GetOptimizationStatus(hot) & 16) !== 0;
    fill();
    const { PerformanceObserver, constants } = await import('node:perf_hooks');
    let majors = 0;
    const gcs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
    });
    gcs.observe({ entryTypes: ['gc'] });
    const before2 = getHeapStatistics().total_heap_size;
    addon.reduceHeap(false);
    const at = getHeapStatistics().total_heap_size;
    // Incremental marking runs in tasks between turns: under load (CI runs three files at once) it can
    // take longer than a second or two. Wait up to 15 s for the collection to finish, then up to 5 s
    // more for the freed pages to be given back: V8 unmaps them on background threads, which lag
    // behind under that load (a clean-clone run saw 99 → 52 MiB after 15 s, where an idle machine
    // gets to 5 MiB in 0.1 s).
    const sleep = () => new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 150 && majors === 0; i++) await sleep();
    for (let i = 0; i < 50 && getHeapStatistics().total_heap_size >= before2 / 2; i++) await sleep();
    const later = getHeapStatistics().total_heap_size;
    gcs.disconnect();
    console.log(JSON.stringify({ before, after, optimised, before2, at, later, majors, kept: keep.length }));`;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--no-memory-reducer', '--input-type=module', '-e', code], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { before: number; after: number; optimised: boolean; before2: number; at: number; later: number; majors: number };
  t.ok(s.after < s.before / 2, `at once: committed heap ${(s.before / MB).toFixed(1)} → ${(s.after / MB).toFixed(1)} MiB`);
  t.ok(s.optimised, 'the optimised function is still optimised');
  t.ok(s.at > s.before2 / 2, `incrementally: not at once (${(s.before2 / MB).toFixed(1)} → ${(s.at / MB).toFixed(1)} MiB)`);
  t.ok(s.majors >= 1, `but over the next turns a full collection runs (${s.majors})`);
  t.ok(s.later < s.before2 * 0.75, `and gives pages back (committed ${(s.before2 / MB).toFixed(1)} → ${(s.later / MB).toFixed(1)} MiB)`);
});
