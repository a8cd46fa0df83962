// The data-path warm-up (tunnel/warm-up.ts): it must push real packets through the real batch path
// (sealed, opened, checked against allowed IPs, handed to the TUN) and leave the daemon's device as
// it was: no peer, no session, no counter of its own changed.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { generatePrivateKey } from '../src/crypto/keys.js';
import { nativeAead } from '../src/crypto/native-aead.js';
import { Device } from '../src/tunnel/device.js';
import { DataPathWarmUp, V6_EVERY, WARM_UP_BATCH_ROUNDS, WARM_UP_SINGLE_ROUNDS } from '../src/tunnel/warm-up.js';
import { rng } from './helpers/device-pair.js';

const clock = { now: () => performance.now(), wall: () => Date.now() };

const aead = nativeAead(1);
if (!aead) t.plan(0, 'the native addon is not built');
else for (const pathMtu of [0, 1280]) {
  t.test(`every warm-up packet arrives intact, and the real device is untouched (path MTU default ${pathMtu})`, async (t) => {
    const real = new Device({ privateKey: generatePrivateKey(rng), clock, rng, aead, mtu: 1420, inPlace: true });
    real.pathMtuDefault = pathMtu;
    const w = new DataPathWarmUp(real);
    t.ok(w.ready, 'the two throwaway devices completed a handshake');
    t.equal(w.handshakes, 1, 'one handshake so far');
    let steps = 0;
    while (w.step()) steps++;
    t.ok(steps > 10, `the work is split into steps (${steps + 1}), each a turn of the event loop`);
    t.equal(w.delivered, 2 * (WARM_UP_SINGLE_ROUNDS + 32 * WARM_UP_BATCH_ROUNDS), 'every packet each way reached the other TUN with its size and destination');
    // IPv6 too (a real TUN carries some at once: router solicitations, MLD), every V6_EVERY-th single round and every other batch.
    t.equal(w.delivered6, 2 * (WARM_UP_SINGLE_ROUNDS / V6_EVERY + 32 * (WARM_UP_BATCH_ROUNDS / 2)), 'the IPv6 packets among them arrived too');
    t.equal(w.handshakes, 2, 'a second pair made its own handshake part way (V8 learns the handshake paths from that one)');
    t.equal(w.step(), false, 'done stays done');
    t.equal(real.peers.size, 0, 'no peer on the real device');
    t.equal(real.index.size, 0, 'no session index on the real device');
    t.same([real.insideDrops.total(), real.outsideDrops.total()], [0, 0], 'no drop counted on the real device');
    t.same([real.out.net.length, real.out.runs.length, real.out.tun.length, real.out.events.length], [0, 0, 0, 0], 'nothing queued on the real device');
  });
}

t.test("the device's reused arrays start in the elements kind the warm-up leaves them in", async (t) => {
  // V8's own view (natives syntax, in a child): an untouched `[]` is small-integer kind, and
  // optimised code that met only the warm-up's turned arrays was deoptimised by the real ones.
  const outbox = new URL('../src/tunnel/outbox.js', import.meta.url).href;
  const clearArray = new URL('../src/tunnel/clear-array.js', import.meta.url).href;
  const code = `
    const { Outbox } = await import(${JSON.stringify(outbox)});
    const { objectArray } = await import(${JSON.stringify(clearArray)});
    const o = new Outbox();
    const kinds = [o.net, o.runs, o.tun, o.events, objectArray()].map((a) => %HasObjectElements(a) && a.length === 0);
    console.log(JSON.stringify({ kinds, plain: %HasSmiElements([]) }));`;
  const r = spawnSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', code], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { kinds: boolean[]; plain: boolean };
  t.ok(out.plain, 'a plain [] is of the small-integer kind (what the check would otherwise miss)');
  t.same(out.kinds, [true, true, true, true, true], "the Outbox's four arrays and objectArray() are empty and of the objects kind");
});
