// Birthday probing, the pure part (transport/birthday.ts) and its wire fields (call-me-maybe's NAT
// kind and capabilities): roles, the probability figures, distinct probe ports, pacing, back-off and
// the hourly budget.
import t from 'tap';
import { randomInt } from 'node:crypto';
import {
  BirthdayPlan,
  DEFAULT_BIRTHDAY_LIMITS,
  PORT_RANGE,
  PORT_RANGE_HIGH,
  PORT_RANGE_LOW,
  PAIRED_CYCLE,
  STAGGER_PROBES,
  SWEEP_PROBES,
  birthdayRole,
  meetProbability,
  pairedPorts,
  portDistance,
  probePorts,
  randomPorts,
} from '../src/transport/birthday.js';
import { portsInOrder } from '../src/transport/endpoints.js';
import { DISCO_CAP_BIRTHDAY, DISCO_CAP_PORTS_IN_ORDER, decodeDiscoMessage, encodeDiscoMessage } from '../src/wire/disco.js';

t.test('roles: only one side hard, both known and capable', async (t) => {
  const hard = { mappingVaries: true, birthday: true };
  const easy = { mappingVaries: false, birthday: true };
  t.same(birthdayRole(hard, easy), { role: 'hard' });
  t.same(birthdayRole(easy, hard), { role: 'easy' });
  t.match(birthdayRole(hard, hard), { role: null, why: /both sides behind symmetric NATs/ });
  t.match(birthdayRole(easy, easy), { role: null, why: /neither/ });
  t.match(birthdayRole(easy, { mappingVaries: null, birthday: true }), { role: null, why: /not known/ });
  t.match(birthdayRole(easy, { ...hard, birthday: false }), { role: null, why: /older meshd/ });
  t.match(birthdayRole({ ...easy, birthday: false }, hard), { role: null, why: /off here/ });
});

t.test('roles: two hard sides probe only when both NATs hand out ports in order; the lower key sweeps', async (t) => {
  const counting = { mappingVaries: true, birthday: true, inOrder: true };
  const random = { mappingVaries: true, birthday: true, inOrder: false };
  t.same(birthdayRole(counting, counting, true), { role: 'sweep' });
  t.same(birthdayRole(counting, counting, false), { role: 'stagger' });
  t.match(birthdayRole(counting, random, true), { role: null, why: /the peer's does not hand out ports in order/ });
  t.match(birthdayRole(random, counting, true), { role: null, why: /ours does not hand out ports in order/ });
  t.match(birthdayRole(counting, { mappingVaries: true, birthday: true }, true), { role: null }, 'an older peer says nothing of its ports: not in order');
  t.same(birthdayRole(counting, { mappingVaries: false, birthday: true }), { role: 'hard' }, 'one hard side: as before');
});

t.test('ports in order: two mappings on one address a few ports apart', async (t) => {
  const r = (...ports: number[]) => ports.map((port, i) => ({ server: `s${i}`, mapped: { address: '203.0.113.2', port }, rttMs: 1 }));
  t.ok(portsInOrder(r(20001, 20002)));
  t.ok(portsInOrder(r(20040, 20009)), 'either order');
  t.notOk(portsInOrder(r(20001, 20001)), 'the same port: not a symmetric NAT');
  t.notOk(portsInOrder(r(20001, 31234)), 'far apart');
  t.notOk(portsInOrder(r(20001)), 'one mapping');
  t.notOk(portsInOrder([{ server: 'a', mapped: { address: '203.0.113.2', port: 1 }, rttMs: 1 }, { server: 'b', mapped: { address: '203.0.113.9', port: 2 }, rttMs: 1 }]), 'two addresses');
});

/**
 * Two NATs that count their ports up, one probe after another from each side's data socket: sweep
 * probe j leaves from s + 1 + j + dS(j), stagger probe k from t + 1 + k + dT(k) (d: ports other flows
 * took since the fresh port); each aims as pairedPorts says, shifted by what it measured of its own
 * drift (shiftS, shiftT). A meeting: a probe of each, each from the port the other aims at.
 */
function pairedMeets(s: number, tt: number, dS: (j: number) => number, dT: (k: number) => number, shiftS = 0, shiftT = 0): number | null {
  const sweep = pairedPorts('sweep', tt, shiftS);
  const stagger = pairedPorts('stagger', s, shiftT);
  const sweepFrom = new Map<number, number>(); // source port -> destination port
  sweep.forEach((dst, j) => sweepFrom.set(s + 1 + j + dS(j), dst));
  for (let k = 0; k < stagger.length; k++) {
    const from = tt + 1 + k + dT(k);
    if (sweepFrom.get(stagger[k]) === from) return k;
  }
  return null;
}

t.test('both hard, counting NATs: the two sides\' probes meet for any drift below the cycle, steady or growing', async (t) => {
  t.equal(SWEEP_PROBES, 381);
  t.equal(STAGGER_PROBES, 381);
  const sweep = pairedPorts('sweep', 30000);
  t.same(sweep.slice(0, 3), [30001, 30002, 30003], 'the sweep: every port after the fresh one');
  const stagger = pairedPorts('stagger', 30000);
  t.same(stagger.slice(0, 3), [30001, 30003, 30005], 'the stagger: one more offset each probe');
  t.equal(new Set(stagger).size, stagger.length, 'no port twice (each probe takes a mapping of its own)');
  t.ok(stagger.every((p) => p >= PORT_RANGE_LOW && p <= PORT_RANGE_HIGH));
  t.ok(pairedPorts('sweep', PORT_RANGE_HIGH - 5).every((p) => p >= PORT_RANGE_LOW && p <= PORT_RANGE_HIGH), 'counted past the top: from the bottom');
  let all = 0;
  for (let dS = 0; dS < PAIRED_CYCLE; dS++) {
    for (let dT = 0; dS + dT < PAIRED_CYCLE; dT++) {
      if (pairedMeets(20000, 40000, () => dS, () => dT) !== null) all++;
      else t.fail(`no meeting for drifts ${dS} + ${dT}`);
    }
  }
  t.equal(all, (PAIRED_CYCLE * (PAIRED_CYCLE + 1)) / 2, 'every steady drift below the cycle meets');
  t.equal(pairedMeets(20000, 40000, () => PAIRED_CYCLE, () => 0), null, 'a drift of a whole cycle does not: the bound is real');
  // Other flows keep taking ports while the probes go: one more every few probes, on both NATs.
  // The offset catches up with such a drift while it is below the cycle: D0 / (1 − growth) < 127.
  for (const [every, start] of [[2, 0], [3, 10], [5, 40], [4, 30], [8, 90]] as const) {
    t.not(pairedMeets(20000, 40000, (l) => start + Math.floor(l / every), (k) => Math.floor(k / every)), null, `drift from ${start} growing one port in ${every} probes on each side`);
  }
});

t.test('both hard, counting NATs: each side measures its own drift before its probes go; what is left is what the cycle makes up for', async (t) => {
  t.equal(portDistance(40000, 40123), 123);
  t.equal(portDistance(PORT_RANGE_HIGH - 1, PORT_RANGE_LOW + 1), 3, 'across the top of the range');
  // The side that waited for the other's fresh port saw many other flows meanwhile: far more than
  // the cycle. Measured, only the drift while each measured (a STUN round trip) is left.
  let checked = 0;
  // A wait up to a turn, with any drift left below the cycle; up to two turns, with a little left.
  for (const waited of [0, 60, 127, 200, 250]) {
    for (const [left1, left2] of waited <= 127 ? [[0, 0], [3, 5], [2, 2], [60, 66], [120, 6]] : [[0, 0], [3, 5], [2, 2]]) {
      const sweepWaited = pairedMeets(20000, 40000, () => waited + left1, () => left2, waited, 0);
      t.not(sweepWaited, null, `the sweeping side waited (${waited} ports) and measured; ${left1} + ${left2} left`);
      const staggerWaited = pairedMeets(20000, 40000, () => left1, () => waited + left2, 0, waited);
      t.not(staggerWaited, null, `the staggering side waited (${waited} ports) and measured; ${left1} + ${left2} left`);
      checked += 2;
    }
  }
  t.equal(checked, 42);
  t.equal(pairedMeets(20000, 40000, () => 300, () => 0, 0, 0), null, 'unmeasured, a drift of 300 does not meet');
  t.not(pairedMeets(20000, 40000, () => 100, () => 150, 100, 150), null, 'both measured: both drifts made up for');
});

t.test('the probability figures of the defaults', async (t) => {
  t.ok(Math.abs(meetProbability(256, 256) - 0.64) < 0.01, `256 × 256: ${meetProbability(256, 256).toFixed(3)}`);
  t.ok(Math.abs(meetProbability(256, 1000) - 0.98) < 0.005, `256 × 1000: ${meetProbability(256, 1000).toFixed(4)}`);
  t.equal(meetProbability(0, 1000), 0);
  t.equal(meetProbability(PORT_RANGE, 1), 1);
  // Against a simulation: 2,000 attempts of 256 random mappings and 1,000 distinct probes, nearest
  // a random announced port: against a NAT that picks every port at random, the order costs nothing.
  let met = 0;
  for (let i = 0; i < 2000; i++) {
    const open = new Set(randomPorts(256, randomInt));
    const announced = PORT_RANGE_LOW + randomInt(PORT_RANGE);
    if (probePorts(1000, [announced], randomInt).some((p) => open.has(p))) met++;
  }
  t.ok(Math.abs(met / 2000 - meetProbability(256, 1000)) < 0.02, `simulated ${(met / 2000).toFixed(3)}`);
});

t.test('probe ports: distinct, in the NAT range, never an announced one', async (t) => {
  const ports = probePorts(5000, [40000, 40007], randomInt);
  t.equal(ports.length, 5000);
  t.equal(new Set(ports).size, 5000, 'no port twice');
  t.ok(ports.every((p) => p >= PORT_RANGE_LOW && p <= PORT_RANGE_HIGH), 'within 1024-65535');
  t.notOk(ports.includes(40000) || ports.includes(40007), 'not the announced ports (plain punches ping those)');
  t.equal(probePorts(PORT_RANGE + 10, [40000], randomInt).length, PORT_RANGE - 1, 'at most the whole range');
  const edge = probePorts(100, [PORT_RANGE_HIGH - 2, PORT_RANGE_LOW], randomInt);
  t.equal(new Set(edge).size, 100, 'near the edges of the range: still as many, distinct');
  t.ok(edge.every((p) => p >= PORT_RANGE_LOW && p <= PORT_RANGE_HIGH), 'and none outside it');
  const random = probePorts(1000, [], randomInt);
  t.equal(new Set(random).size, 1000, 'nothing announced: distinct random ports');
  t.ok(Math.max(...random) - Math.min(...random) > 30_000, 'spread over the range');
  t.same(probePorts(3, [80, 70000], randomInt).length, 3, 'announced ports outside the range are no centre');
});

t.test('probe ports: nearest the announced ports first, so a port block is covered at once', async (t) => {
  t.same(probePorts(6, [40000, 40010], randomInt), [40001, 39999, 40011, 40009, 40002, 39998], 'distance 1 from each, then 2');
  // A carrier-grade NAT's block of 64 ports, its STUN mappings (announced) at two ports in it: the
  // first 128 probes cover every other port of the block.
  const block = Array.from({ length: 64 }, (_, i) => 52224 + i);
  const first = new Set(probePorts(128, [52230, 52281], randomInt));
  t.ok(block.filter((p) => p !== 52230 && p !== 52281).every((p) => first.has(p)), 'the whole block within 128 probes');
  // A NAT that counts its ports up: the hard side's next mappings follow its last announced one.
  const next = probePorts(1000, [30001, 30002], randomInt);
  t.ok(next.indexOf(30003) < 4 && next.indexOf(30100) < 400, `the following ports early (30003 at ${next.indexOf(30003)}, 30100 at ${next.indexOf(30100)})`);
});

t.test('pacing: the easy side spreads its probes over the window, the hard side opens all at once', async (t) => {
  const easy = new BirthdayPlan('easy');
  t.ok(easy.start(0));
  let sent = easy.take(0);
  t.ok(sent > 0 && sent <= 1, `at the start: ${sent}`);
  for (let ms = 250; ms < DEFAULT_BIRTHDAY_LIMITS.windowMs; ms += 250) {
    const n = easy.take(ms);
    t.ok(n <= 63, `tick ${ms}: ${n} probes (1,000 over the window's first 4 s)`);
    sent += n;
  }
  sent += easy.take(DEFAULT_BIRTHDAY_LIMITS.windowMs - 1);
  t.equal(sent, 1000, 'the whole attempt is exactly the configured number');
  t.equal(easy.take(DEFAULT_BIRTHDAY_LIMITS.windowMs + 1), 0, 'nothing after the window');
  const hard = new BirthdayPlan('hard');
  hard.start(0);
  t.equal(hard.take(0), 256, 'every mapping opened at once');
  t.equal(hard.take(100), 0);
});

t.test('one quick retry, then back-off doubling after each failure; success resets it; the hourly budget holds', async (t) => {
  const p = new BirthdayPlan('easy');
  t.ok(p.start(0));
  t.notOk(p.start(100), 'not while one runs');
  p.take(4999);
  p.failed(5000);
  t.equal(p.nextAttemptAtMs(), 7000, 'the first miss (bad luck, 1.8 %): another attempt 2 s later');
  t.notOk(p.start(6999));
  t.ok(p.start(7000));
  p.take(11_999);
  p.failed(12_000);
  t.equal(p.nextAttemptAtMs(), 42_000, 'a second miss in a row: 30 s');
  t.notOk(p.start(41_999));
  t.ok(p.start(42_000));
  p.take(46_999);
  p.failed(47_000);
  t.equal(p.nextAttemptAtMs(), 107_000, 'then 60 s');
  p.succeeded();
  t.ok(p.start(107_001), 'success: no back-off');
  p.failed(112_000);
  t.equal(p.nextAttemptAtMs(), 114_000, 'and the next miss gets the quick retry again');
  const tight = new BirthdayPlan('easy', { ...DEFAULT_BIRTHDAY_LIMITS, hourlyBudget: 2500, backoffMs: 0 });
  const sends: [number, number][] = [];
  for (let now = 0; now < 2 * 3_600_000; now += 10_000) {
    if (tight.start(now)) {
      sends.push([now + 4999, tight.take(now + 4999)]);
      tight.failed(now + 5000);
    }
  }
  const worstHour = Math.max(...sends.map(([at]) => sends.filter(([b]) => b >= at && b - at < 3_600_000).reduce((n, [, k]) => n + k, 0)));
  t.ok(worstHour <= 2500, `no hour holds more than the budget: ${worstHour}`);
  t.ok(sends.length >= 4, `the budget refills as probes age past an hour: ${sends.length} attempts in two hours`);
});

t.test("call-me-maybe carries the sender's NAT kind and capabilities; older ones decode as before", async (t) => {
  const candidates = [{ address: '203.0.113.1', port: 4000 }];
  const m = decodeDiscoMessage(encodeDiscoMessage({ type: 'call-me-maybe', candidates, nat: 'varies', caps: DISCO_CAP_BIRTHDAY }));
  t.same(m, { type: 'call-me-maybe', candidates, nat: 'varies', caps: DISCO_CAP_BIRTHDAY });
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'call-me-maybe', candidates })), { type: 'call-me-maybe', candidates }, 'without the fields');
  const both = DISCO_CAP_BIRTHDAY | DISCO_CAP_PORTS_IN_ORDER;
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'call-me-maybe', candidates, nat: 'varies', caps: both })), { type: 'call-me-maybe', candidates, nat: 'varies', caps: both }, 'ports in order: a second bit');
  const odd = encodeDiscoMessage({ type: 'call-me-maybe', candidates, nat: 'independent', caps: 0 });
  odd[odd.length - 2] = 9;
  t.match(decodeDiscoMessage(odd), { nat: 'unknown' }, 'an unknown NAT code reads as unknown');
});

t.test('call-me-maybe carries fresh ports; a bad field is left out, not the message', async (t) => {
  const candidates = [{ address: '203.0.113.1', port: 4000 }];
  const msg = { type: 'call-me-maybe' as const, candidates, nat: 'varies' as const, caps: DISCO_CAP_BIRTHDAY };
  t.same(decodeDiscoMessage(encodeDiscoMessage({ ...msg, fresh: [40123, 65535] })), { ...msg, fresh: [40123, 65535] });
  t.same(decodeDiscoMessage(encodeDiscoMessage({ ...msg, fresh: [1, 2, 3, 4, 5, 6] })), { ...msg, fresh: [1, 2, 3, 4] }, 'at most four are sent');
  const plain = encodeDiscoMessage(msg);
  const short = Uint8Array.from([...plain, 2, 0x9c, 0x40]);
  t.same(decodeDiscoMessage(short), msg, 'a count longer than the field: the ports are left out');
  t.same(decodeDiscoMessage(Uint8Array.from([...plain, 9, ...new Array(18).fill(1)])), msg, 'a count past the limit');
  t.same(decodeDiscoMessage(Uint8Array.from([...plain, 1, 0, 0])), msg, 'port 0');
  const older = decodeDiscoMessage(encodeDiscoMessage({ ...msg, fresh: [40123] }).subarray(0, plain.length));
  t.same(older, msg, 'cut where an older sender ends: the same message without them');
});
