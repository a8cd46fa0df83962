// BirthdayProber (transport/birthday-probe.ts) with a fake host: who sends what, when sockets open,
// are kept and close, and that nothing runs for pairs that cannot meet.
import t from 'tap';
import { BirthdayProber, PRUNE_AFTER_MS, REVIVE_GRACE_MS, publicV4, type BirthdayEvent } from '../src/transport/birthday-probe.js';
import { DEFAULT_BIRTHDAY_LIMITS, STAGGER_PROBES, SWEEP_PROBES, pairedPorts } from '../src/transport/birthday.js';
import type { Endpoint } from '../src/tunnel/endpoint.js';
import type { Peer } from '../src/tunnel/peer.js';

function host(ownVaries: boolean | null) {
  const pings: Endpoint[] = [];
  const events: BirthdayEvent[] = [];
  return { pings, events, h: { ping: (_: Peer, to: Endpoint) => void pings.push(to), event: (e: BirthdayEvent) => void events.push(e), ownMappingVaries: () => ownVaries } };
}

const peer = { id: 'p1', endpoint: null } as unknown as Peer;

const hardTold = { nat: { mappingVaries: true, birthday: true }, candidates: [{ address: '10.2.0.2', port: 51820 }, { address: '203.0.113.2', port: 40000 }], fresh: [] };
const easyTold = { nat: { mappingVaries: false, birthday: true }, candidates: [{ address: '10.1.0.2', port: 51820 }, { address: '203.0.113.1', port: 51820 }], fresh: [] };

/** A hard side whose attempt towards a fresh peer `id` runs with probe sockets `socks` open. */
function hardAttempt(id: string, socks: number[]) {
  const { events, h } = host(true);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id, endpoint: null } as unknown as Peer & { endpoint: Endpoint | null };
  b.step(q, easyTold, 0, true);
  b.socketsReady(q, socks);
  return { events, b, q };
}

/** An easy side whose attempt towards a fresh peer `id` (behind a symmetric NAT) runs. */
function easyAttempt(id: string) {
  const { pings, h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id, endpoint: null } as unknown as Peer & { endpoint: Endpoint | null };
  b.step(q, hardTold, 0, true);
  return { pings, b, q };
}

t.test('the public IPv4 candidate is the target', async (t) => {
  t.same(publicV4(hardTold.candidates), { address: '203.0.113.2', port: 40000 });
  t.equal(publicV4([{ address: '192.168.1.2', port: 1 }, { address: '100.64.0.1', port: 1 }, { address: 'fd00::1', port: 1 }]), null);
});

t.test('easy side: distinct ports of the hard side\'s address over the window, a quick retry, then back-off', async (t) => {
  const { pings, events, h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  for (let now = 0; now <= 5000; now += 250) b.step(peer, hardTold, now, true);
  t.equal(pings.length, 1000, 'the attempt\'s 1,000 probes');
  t.ok(pings.every((p) => p.address === '203.0.113.2' && p.sock === undefined), 'to the hard side\'s public address, from the data socket');
  t.equal(new Set(pings.map((p) => p.port)).size, 1000, 'each port once');
  t.notOk(pings.some((p) => p.port === 40000), 'not the port STUN saw');
  t.equal(events.length, 0, 'the easy side opens no sockets');
  b.step(peer, hardTold, 5250, true);
  t.match(b.statusOf(peer), { role: 'easy', state: 'backing-off', attempts: 1, probesSent: 1000 });
  b.step(peer, hardTold, 6900, true);
  t.equal(pings.length, 1000, 'nothing before the quick retry');
  b.step(peer, hardTold, 7100, true);
  t.ok(pings.length > 1000, 'a second attempt 2 s after the first missed');
  for (let now = 7350; now <= 12_350; now += 250) b.step(peer, hardTold, now, true);
  t.equal(pings.length, 2000, 'its 1,000 probes');
  t.match(b.statusOf(peer), { state: 'backing-off', attempts: 2 });
  b.step(peer, hardTold, 40_000, true);
  t.equal(pings.length, 2000, 'a second miss in a row: nothing during the 30 s back-off');
  b.step(peer, hardTold, 42_800, true);
  t.ok(pings.length > 2000, 'a third attempt after it');
});

t.test('easy side: the first probes go next to the ports the hard side announced at that address, both STUN mappings', async (t) => {
  const { pings, h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const told = { ...hardTold, candidates: [...hardTold.candidates, { address: '203.0.113.2', port: 40100 }, { address: '198.51.100.9', port: 20000 }] };
  for (let now = 0; now <= 1000; now += 250) b.step(peer, told, now, true);
  t.ok(pings.length >= 8, `probes sent: ${pings.length}`);
  t.same(pings.slice(0, 8).map((p) => p.port), [40001, 39999, 40101, 40099, 40002, 39998, 40102, 40098], 'distance 1 from each announced port, then 2, …');
  t.notOk(pings.some((p) => p.port === 40000 || p.port === 40100), 'never an announced port itself');
  t.notOk(pings.some((p) => Math.abs(p.port - 20000) < 3), 'not near a port announced at another address');
});

t.test('easy side: a fresh port told while probing: the probes not sent yet go nearest it, none twice, no more in all', async (t) => {
  const { pings, h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  for (let now = 0; now <= 500; now += 250) b.step(peer, hardTold, now, true);
  const before = pings.length;
  t.ok(before > 0 && pings.every((p) => Math.abs(p.port - 40000) <= before), `first probes near the announced port: ${before}`);
  const told = { ...hardTold, fresh: [52000] };
  for (let now = 750; now <= 5000; now += 250) b.step(peer, told, now, true);
  t.same(pings.slice(before, before + 4).map((p) => p.port), [52001, 51999, 52002, 51998], 'then distance 1 from the fresh port, then 2, …');
  t.equal(pings.length, 1000, 'the attempt\'s 1,000 probes in all');
  t.equal(new Set(pings.map((p) => p.port)).size, 1000, 'each port once');
  t.ok(pings.slice(before).every((p) => Math.abs(p.port - 52000) <= 500), 'all the rest within ±500 of it');
});

t.test('easy side: a fresh port told before the attempt starts is its centre', async (t) => {
  const { pings, h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  for (let now = 0; now <= 500; now += 250) b.step(peer, { ...hardTold, fresh: [30000] }, now, true);
  t.same(pings.slice(0, 4).map((p) => p.port), [30001, 29999, 30002, 29998]);
  t.notOk(pings.some((p) => p.port === 30000), 'not the fresh port itself (it maps towards a STUN server)');
});

t.test('easy side: a probe answered just after the window closed is still the attempt\'s meeting', async (t) => {
  const { pings, h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  for (let now = 0; now <= 5250; now += 250) b.step(peer, hardTold, now, true);
  t.match(b.statusOf(peer), { state: 'backing-off', attempts: 1 }, 'the window closed: a miss');
  const late = { address: '203.0.113.2', port: pings[999].port };
  let unprobed = 1024;
  while (pings.some((p) => p.port === unprobed)) unprobed++;
  b.directPath(peer, { address: '203.0.113.2', port: unprobed }, hardTold);
  t.match(b.statusOf(peer), { state: 'backing-off' }, 'a port never probed is no meeting');
  b.directPath(peer, late, hardTold);
  t.match(b.statusOf(peer), { state: 'met' }, 'the last probe\'s pong, after the window: met');
  t.ok(b.found(peer, late), 'status calls the path a birthday path');
  t.equal(b.counters.successes, 1);
  b.directPath(peer, late, hardTold);
  t.equal(b.counters.successes, 1, 'the same path again (after idle) is no second meeting');
});

t.test('hard side: sockets open at once, each pings the easy side; the one that meets is kept', async (t) => {
  const { pings, events, h } = host(true);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  b.step(peer, easyTold, 0, true);
  t.same(events, [{ type: 'birthday-open', peerId: 'p1', count: 256, target: { address: '203.0.113.1', port: 51820 } }], 'towards the endpoint the easy side announced');
  b.socketsReady(peer, [1, 2, 3]);
  t.same(pings, [1, 2, 3].map((sock) => ({ address: '203.0.113.1', port: 51820, sock })), 'one ping from each socket to the easy side');
  b.directPath(peer, { address: '203.0.113.1', port: 51820, sock: 2 }, easyTold);
  t.same(events[1], { type: 'birthday-keep', peerId: 'p1', socks: [2] }, 'the meeting socket kept, the rest closed');
  t.match(b.statusOf(peer), { state: 'met', sockets: 1 });
  t.ok(b.found(peer, { address: '203.0.113.1', port: 51820, sock: 2 }));
  t.notOk(b.found(peer, { address: '203.0.113.1', port: 51820, sock: 3 }), 'not the same path from a socket that was closed');
  t.notOk(b.found(peer, { address: '203.0.113.9', port: 51820 }), 'nor a path to anywhere else');
  // Steps every tick (250 ms) from `from` to `to`.
  const run = (from: number, to: number, relayed: boolean) => {
    for (let now = from; now <= to; now += 250) b.step(peer, easyTold, now, relayed);
  };
  // Idle, then traffic: relayed for a moment; the old path gets REVIVE_GRACE_MS to answer.
  run(60_000, 60_000 + REVIVE_GRACE_MS - 250, true);
  t.equal(events.length, 2, 'no new attempt while the earlier path may answer');
  (peer as { endpoint: Endpoint | null }).endpoint = { address: '203.0.113.1', port: 51820, sock: 2 };
  run(63_000, 64_000, false);
  t.equal(events.length, 2, 'it answered: nothing to do');
  // The path is gone: relayed past the grace, a new attempt opens new sockets, keeping the old one
  // until it ends; it ends without a meeting: all close.
  run(70_000, 70_000 + REVIVE_GRACE_MS, true);
  t.same(events[2], { type: 'birthday-open', peerId: 'p1', count: 256, target: { address: '203.0.113.1', port: 51820 } });
  b.socketsReady(peer, [7]);
  run(73_250, 78_500, true);
  t.same(events[3], { type: 'birthday-close', peerId: 'p1' }, 'window over, no meeting: every socket closes');
  t.match(b.statusOf(peer), { state: 'backing-off', sockets: 0 });
  b.socketsReady(peer, [9]);
  t.same(events[4], { type: 'birthday-close', peerId: 'p1' }, 'sockets that come up after the attempt ended are closed');
});

t.test('hard side: a socket met, then the data socket\'s own mapping met too and won on RTT: still the attempt\'s path, the sockets close', async (t) => {
  const { events, b, q } = hardAttempt('p6', [1, 2, 3]);
  b.directPath(q, { address: '203.0.113.1', port: 51820, sock: 2 }, easyTold);
  t.same(events[1], { type: 'birthday-keep', peerId: 'p6', socks: [2] });
  const data = { address: '203.0.113.1', port: 51820 };
  b.directPath(q, data, easyTold);
  t.same(events[2], { type: 'birthday-close', peerId: 'p6' }, 'the kept socket closes');
  t.ok(b.found(q, data), 'status: via birthday probing, on the data socket');
  t.match(b.statusOf(q), { state: 'met', sockets: 0 });
  t.equal(b.counters.successes, 1, 'one meeting, not two');
  b.directPath(q, { address: '203.0.113.9', port: 51820 }, easyTold);
  t.equal(events.length, 3, 'a path elsewhere is not the attempt\'s');
});

t.test('hard side: a socket met, but the peer\'s data went to our data socket\'s mapping (our endpoint roamed there): via probing at once, the sockets close later', async (t) => {
  const { events, b, q } = hardAttempt('p5', [1, 2, 3]);
  b.directPath(q, { address: '203.0.113.1', port: 51820, sock: 2 }, easyTold);
  t.same(events[1], { type: 'birthday-keep', peerId: 'p5', socks: [2] });
  const data = { address: '203.0.113.1', port: 51820 };
  (q as { endpoint: Endpoint | null }).endpoint = data; // WireGuard roaming, no pong
  t.ok(b.found(q, data), 'status: via birthday probing on the data socket at once');
  b.step(q, easyTold, 1000, false);
  t.equal(events.length, 2, 'the socket stays a while (the peer may still settle on it)');
  b.step(q, easyTold, 1000 + PRUNE_AFTER_MS + 250, false);
  t.same(events[2], { type: 'birthday-close', peerId: 'p5' }, 'then it closes');
  t.ok(b.found(q, data), 'still via birthday probing');
  t.equal(b.counters.successes, 1);
});

t.test('no attempt for two hard sides, two easy ones, an unknown NAT, or a peer that cannot probe', async (t) => {
  for (const [own, told, why] of [
    [true, hardTold, /both sides behind symmetric NATs/],
    [false, easyTold, /neither/],
    [null, hardTold, /not known/],
    [false, { ...hardTold, nat: { mappingVaries: true, birthday: false } }, /older meshd/],
    [false, { nat: null, candidates: [], fresh: [] }, /has not said/],
  ] as const) {
    const { pings, events, h } = host(own);
    const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
    for (let now = 0; now < 10_000; now += 250) b.step(peer, told, now, true);
    t.equal(pings.length + events.length, 0, `nothing sent or opened (${why})`);
    t.match(b.statusOf(peer).why, why);
  }
  const { pings, h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  b.step(peer, hardTold, 0, false);
  t.equal(pings.length, 0, 'nor for a peer with a direct path');
});

t.test('two sockets met at once: both stay until the peer settles on one', async (t) => {
  const { events, h } = host(true);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id: 'p2', endpoint: null } as unknown as Peer;
  b.step(q, easyTold, 0, true);
  b.socketsReady(q, [1, 2, 3]);
  b.heardOn(q, 3); // a probe reached socket 3 too
  b.directPath(q, { address: '203.0.113.1', port: 51820, sock: 2 }, easyTold);
  t.same(events[1], { type: 'birthday-keep', peerId: 'p2', socks: [2, 3] }, 'the meeting socket and the other one the peer reached');
  (q as { endpoint: Endpoint | null }).endpoint = { address: '203.0.113.1', port: 51820, sock: 3 }; // the peer's data came on 3
  t.ok(b.found(q, q.endpoint), 'either is a birthday path');
  for (let now = 250; now <= 10_000; now += 250) b.step(q, easyTold, now, false);
  t.equal(events.length, 2, 'both kept for a while');
  b.step(q, easyTold, 10_250, false);
  t.same(events[2], { type: 'birthday-keep', peerId: 'p2', socks: [3] }, 'then only the one in use');
});

t.test('easy side: the hard side\'s socket met us first (our device roamed to its mapping, announced port or not): that is the attempt\'s meeting', async (t) => {
  const { pings, h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id: 'p3', endpoint: null } as unknown as Peer & { endpoint: Endpoint | null };
  b.step(q, hardTold, 0, true);
  t.ok(pings.length > 0 && pings.length < 1000, 'probing');
  const mapping = { address: '203.0.113.2', port: 51814 };
  t.notOk(b.found(q, mapping), 'not found before it met');
  q.endpoint = mapping;
  b.step(q, hardTold, 250, false);
  t.match(b.statusOf(q), { role: 'easy', state: 'met' });
  t.ok(b.found(q, mapping), 'the path counts as found by probing');
  t.equal(b.counters.successes, 1);
  const sent = pings.length;
  b.step(q, hardTold, 500, false);
  t.equal(pings.length, sent, 'no more probes');

  // One of the hard side's sockets drew the port it announced (its NAT maps that port towards the
  // STUN server, and towards us for the socket): our punch there met it. Still this attempt's.
  const { b: c, q: r } = easyAttempt('p4');
  r.endpoint = { address: '203.0.113.2', port: 40000 };
  c.step(r, hardTold, 250, false);
  t.ok(c.found(r, r.endpoint), 'a path at the announced port, appearing while probing, is found by probing');
  t.equal(c.counters.successes, 1);
  t.match(c.statusOf(r), { state: 'met' });

  // A pong from the announced port to our punch, while probing, meets at once (no tick's wait).
  const { b: d, q: s } = easyAttempt('p5');
  d.directPath(s, { address: '203.0.113.2', port: 40000 }, hardTold);
  t.match(d.statusOf(s), { state: 'met' }, 'met on the pong');
  // Not another address, not our own LAN peer's, and not after the attempt ended.
  const { b: e, q: u } = easyAttempt('p6');
  e.directPath(u, { address: '10.2.0.2', port: 51820 }, hardTold);
  t.match(e.statusOf(u), { state: 'probing' }, 'a LAN path is not a meeting');
  for (let now = 250; now <= 5250; now += 250) e.step(u, hardTold, now, true);
  t.notMatch(e.statusOf(u), { state: 'probing' }, 'the window passed');
  e.directPath(u, { address: '203.0.113.2', port: 40000 }, hardTold);
  t.ok(e.found(u, { address: '203.0.113.2', port: 40000 }), 'a pong from the announced port after the attempt: the hard side\'s next attempt met our punch');
  t.equal(e.counters.successes, 1);
});

t.test('easy side: the hard side\'s socket met our punch to a port it announced before our first attempt: a meeting too', async (t) => {
  const { h } = host(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id: 'p9', endpoint: null } as unknown as Peer;
  b.directPath(q, { address: '203.0.113.2', port: 31337 }, hardTold);
  t.match(b.statusOf(q), { state: 'idle' }, 'a port it did not announce (nor we probe) is no meeting');
  b.directPath(q, { address: '203.0.113.2', port: 40000 }, hardTold);
  t.match(b.statusOf(q), { role: 'easy', state: 'met', attempts: 0 }, 'met, with no attempt of ours');
  t.ok(b.found(q, { address: '203.0.113.2', port: 40000 }), 'status calls the path a birthday path');
  t.equal(b.counters.successes, 1);
  b.step(q, hardTold, 0, false);
  t.match(b.statusOf(q), { state: 'met' }, 'a tick on the direct path keeps it so');
  // Not for a hard side that cannot probe, nor when we are the hard one, nor for an unknown NAT.
  for (const [own, told] of [
    [false, { ...hardTold, nat: { mappingVaries: true, birthday: false } }],
    [true, hardTold],
    [false, { ...hardTold, nat: null }],
  ] as const) {
    const x = host(own);
    const c = new BirthdayProber(x.h, DEFAULT_BIRTHDAY_LIMITS);
    c.directPath(q, { address: '203.0.113.2', port: 40000 }, told);
    t.equal(c.counters.successes, 0, `no meeting (own NAT varies: ${own}, peer ${JSON.stringify(told.nat)})`);
  }
});

t.test('hard side: the easy side met on one of our sockets and its data came there before our own pong: that socket is kept', async (t) => {
  const { events, h } = host(true);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id: 'p5', endpoint: null } as unknown as Peer & { endpoint: Endpoint | null };
  b.step(q, easyTold, 0, true);
  b.socketsReady(q, [1, 2, 3]);
  b.heardOn(q, 2); // an easy-side probe reached socket 2 (we answered it with a pong)
  // The easy side met, sent its data to socket 2's mapping; our device roamed there: direct now.
  q.endpoint = { address: '203.0.113.1', port: 51820, sock: 2 };
  b.step(q, easyTold, 250, false);
  t.same(events.slice(1), [{ type: 'birthday-keep', peerId: 'p5', socks: [2] }], 'socket 2 kept, the others closed; no birthday-close');
  t.match(b.statusOf(q), { role: 'hard', state: 'met', sockets: 1 });
  t.ok(b.found(q, q.endpoint), 'the path counts as found by probing');
  t.equal(b.counters.successes, 1);
  for (let now = 500; now <= 12_000; now += 250) b.step(q, easyTold, now, false);
  t.equal(events.length, 2, 'nothing closes while the peer uses it');

  // An easy-side probe drew our data socket's own mapping towards it: met on the data socket. The
  // probe sockets all close, and the path counts as found by probing.
  const { events: ev2, b: c, q: r } = hardAttempt('p6', [4, 5]);
  r.endpoint = { address: '203.0.113.1', port: 51820 };
  c.step(r, easyTold, 250, false);
  t.same(ev2.slice(1), [{ type: 'birthday-close', peerId: 'p6' }], 'every probe socket closes');
  t.match(c.statusOf(r), { role: 'hard', state: 'met', sockets: 0 });
  t.ok(c.found(r, r.endpoint), 'the data socket\'s path counts as found by probing');
  t.notOk(c.found(r, { address: '203.0.113.1', port: 51820, sock: 4 }), 'not a closed socket');
  t.equal(c.counters.successes, 1);

  // A pong on the data socket from the easy side's public endpoint meets at once.
  const { events: ev3, b: d, q: u } = hardAttempt('p7', [6, 7]);
  d.directPath(u, { address: '203.0.113.1', port: 51820 }, easyTold);
  t.match(d.statusOf(u), { state: 'met', sockets: 0 });
  t.same(ev3.slice(1), [{ type: 'birthday-close', peerId: 'p7' }]);

  // A direct path elsewhere (the easy side's LAN address) is another path: the attempt ends without
  // a meeting, and the probe sockets close.
  const { events: ev4, b: e, q: v } = hardAttempt('p8', [8, 9]);
  v.endpoint = { address: '10.1.0.2', port: 51820 };
  e.step(v, easyTold, 250, false);
  t.same(ev4.slice(1), [{ type: 'birthday-close', peerId: 'p8' }]);
  t.notOk(e.found(v, v.endpoint));
  t.equal(e.counters.successes, 0);
});

/** A side behind a symmetric NAT that counts its ports up, towards a peer behind another. */
function countingHost(ownKeyFirst: boolean) {
  const pings: Endpoint[] = [];
  const events: BirthdayEvent[] = [];
  let fresh: { port: number; atMs: number } | null = null;
  const h = {
    ping: (_: Peer, to: Endpoint) => void pings.push(to),
    event: (e: BirthdayEvent) => void events.push(e),
    ownMappingVaries: () => true,
    ownPortsInOrder: () => true,
    ownFresh: () => fresh,
    ownKeyFirst: () => ownKeyFirst,
  };
  return { pings, events, h, setFresh: (port: number, atMs: number) => void (fresh = { port, atMs }) };
}

const countingTold = (fresh: number[], freshAtMs?: number) => ({
  nat: { mappingVaries: true, birthday: true, inOrder: true },
  candidates: [{ address: '10.2.0.2', port: 51820 }, { address: '203.0.113.2', port: 40000 }],
  fresh,
  freshAtMs,
});

t.test('both hard, counting NATs: each takes a fresh port, then sends every probe at once from its data socket; a pong from one is the meeting', async (t) => {
  const { pings, events, h, setFresh } = countingHost(true);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id: 'p9', endpoint: null } as unknown as Peer;
  b.step(q, countingTold([]), 0, true);
  t.same(events, [{ type: 'birthday-fresh', peerId: 'p9' }], 'the attempt asks for a fresh port of ours');
  t.match(b.statusOf(q), { role: 'sweep', state: 'probing' });
  setFresh(30000, 5);
  b.step(q, countingTold([]), 250, true);
  t.equal(pings.length, 0, 'nothing before the peer told its fresh port');
  b.step(q, countingTold([41000], 300), 300, true);
  t.equal(pings.length, 0, 'both fresh ports known: first our own counter is measured');
  t.same(events[1], { type: 'birthday-measure', peerId: 'p9' });
  b.step(q, countingTold([41000], 300), 320, true);
  t.equal(events.length, 2, 'once');
  b.measured(q, 30040, 330);
  t.equal(pings.length, SWEEP_PROBES, 'then every probe at once');
  t.same(pings.slice(0, 3), [{ address: '203.0.113.2', port: 41041 }, { address: '203.0.113.2', port: 41042 }, { address: '203.0.113.2', port: 41043 }], 'the ports after its fresh one, shifted by the 40 ports our counter moved, from the data socket');
  b.measured(q, 30041, 340);
  b.step(q, countingTold([41000], 300), 550, true);
  t.equal(pings.length, SWEEP_PROBES, 'once');
  b.directPath(q, { address: '203.0.113.2', port: 40000 }, countingTold([41000], 300));
  t.match(b.statusOf(q), { state: 'probing' }, 'a path at a port we did not probe is not the attempt\'s');
  const met = { address: '203.0.113.2', port: 41050 };
  b.directPath(q, met, countingTold([41000], 300));
  t.match(b.statusOf(q), { role: 'sweep', state: 'met', probesSent: SWEEP_PROBES });
  t.ok(b.found(q, met), 'status: direct via birthday probing');
  t.equal(events.length, 2, 'no socket opened or closed');
});

t.test('both hard, counting NATs: the staggering side probes with its own fresh port of this attempt; the peer\'s new fresh port starts an attempt in back-off', async (t) => {
  const { pings, events, h, setFresh } = countingHost(false);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id: 'p8', endpoint: null } as unknown as Peer;
  setFresh(30000, -100);
  for (let now = 0; now <= 5000; now += 250) b.step(q, countingTold([41000], 10), now, true);
  t.equal(pings.length, 0, 'a fresh port of ours from before the attempt is not used');
  b.step(q, countingTold([41000], 10), 5250, true);
  t.match(b.statusOf(q), { role: 'stagger', state: 'backing-off', attempts: 1 });
  b.step(q, countingTold([41000], 10), 5500, true);
  t.equal(events.length, 1, 'the same fresh port again starts nothing during the back-off');
  b.step(q, countingTold([42000], 5600), 5600, true);
  t.equal(events.length, 2, 'the peer\'s new fresh port starts ours, back-off or not');
  t.match(b.statusOf(q), { state: 'probing', attempts: 2 });
  setFresh(30500, 5650);
  b.step(q, countingTold([42000], 5600), 5700, true);
  t.same(events[2], { type: 'birthday-measure', peerId: 'p8' });
  b.measured(q, null, 5710);
  t.equal(pings.length, STAGGER_PROBES, 'every probe at once (no measure: no shift)');
  t.same(pings.map((p) => p.port), pairedPorts('stagger', 42000), 'the ports after the peer\'s fresh one, each shifted one more than the last');
  t.same(pairedPorts('stagger', 42000, 7).slice(0, 2), [42008, 42010]);
});

t.test('both hard, one NAT picks ports at random: no attempt', async (t) => {
  const { pings, events, h } = countingHost(true);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const told = { ...countingTold([41000], 0), nat: { mappingVaries: true, birthday: true, inOrder: false } };
  for (let now = 0; now < 10_000; now += 250) b.step(peer, told, now, true);
  t.equal(pings.length + events.length, 0);
  t.match(b.statusOf(peer).why, /does not hand out ports in order/);
});

t.test('both hard: a measure that moved thousands of ports is not believed (no shift)', async (t) => {
  const { pings, h, setFresh } = countingHost(true);
  const b = new BirthdayProber(h, DEFAULT_BIRTHDAY_LIMITS);
  const q = { id: 'p7', endpoint: null } as unknown as Peer;
  b.step(q, countingTold([]), 0, true);
  setFresh(30000, 5);
  b.step(q, countingTold([41000], 10), 10, true);
  b.measured(q, 30000 - 7, 20);
  t.same(pings.slice(0, 2).map((p) => p.port), [41001, 41002], 'a counter that went back 7 ports: not a measure');
});
