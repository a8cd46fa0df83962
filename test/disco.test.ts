// Disco codec and the discovery engine between two sans-IO devices: punching, upgrade to a direct
// path, heartbeats, expiry when the path dies, and drops before crypto for strangers.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { decodeDiscoEnvelope, decodeDiscoMessage, encodeDiscoMessage, encodeDiscoEnvelope } from '../src/wire/disco.js';
import { Discovery } from '../src/transport/discovery.js';
import { isDirectConfirmed } from '../src/transport/path.js';
import { relayEndpoint, type Endpoint } from '../src/tunnel/endpoint.js';
import { makePair, pump, EP_A, EP_B } from './helpers/device-pair.js';
import { ipv4Packet } from './helpers/ip-packet.js';
import { generatePrivateKey, publicKeyOf } from '../src/crypto/keys.js';
import { discoKey, sealDisco } from '../src/crypto/disco-box.js';

const rnd = (n: number) => new Uint8Array(randomBytes(n));

t.test('disco messages round-trip; junk never throws', async (t) => {
  const txid = rnd(12);
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'ping', txid })), { type: 'ping', txid });
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'pong', txid, src: { address: '203.0.113.1', port: 51820 } })), { type: 'pong', txid, src: { address: '203.0.113.1', port: 51820 } });
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'pong', txid, src: null })), { type: 'pong', txid, src: null });
  const cands = [{ address: '198.51.100.7', port: 41641 }, { address: '2001:db8::5', port: 51820 }];
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'call-me-maybe', candidates: cands })), { type: 'call-me-maybe', candidates: cands });
  // The roster serial rides on pings and pongs; messages without one (older senders) still decode.
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'ping', txid, serial: 2 ** 40 + 7 })), { type: 'ping', txid, serial: 2 ** 40 + 7 });
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'pong', txid, src: { address: '2001:db8::5', port: 51820 }, serial: 9 })), { type: 'pong', txid, src: { address: '2001:db8::5', port: 51820 }, serial: 9 });
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'pong', txid, src: null, serial: 3 })), { type: 'pong', txid, src: null, serial: 3 });
  const delta = rnd(300);
  t.same(decodeDiscoMessage(encodeDiscoMessage({ type: 'roster-delta', delta })), { type: 'roster-delta', delta });
  t.equal(decodeDiscoMessage(encodeDiscoMessage({ type: 'roster-delta', delta: rnd(1001) })), null, 'a delta larger than one datagram should carry is refused');
  t.doesNotThrow(() => {
    for (let i = 0; i < 20000; i++) {
      const b = rnd(Math.floor(Math.random() * 80));
      if (b.length && Math.random() < 0.7) b[0] = 1 + (i % 6);
      decodeDiscoMessage(b);
      decodeDiscoEnvelope(b);
    }
  }, '20000 random inputs decode without throwing');
});

interface Net {
  udpUp: boolean;
  delivered: number;
}

/** Moves disco messages between the two engines: `to: null` and relay endpoints via a fake relay. */
function wire(p: ReturnType<typeof makePair>, da: Discovery, db: Discovery, net: Net): void {
  for (let round = 0; round < 10; round++) {
    const fromA = da.out.splice(0);
    const fromB = db.out.splice(0);
    if (!fromA.length && !fromB.length) return;
    const deliver = (msgs: typeof fromA, to: Discovery, fromKey: Uint8Array, fromEp: Endpoint, toEp: Endpoint) => {
      for (const m of msgs) {
        if (m.to === null || m.to.relay) to.handle(m.data, relayEndpoint('wss://relay.test/', fromKey));
        else if (net.udpUp && m.to.address === toEp.address && m.to.port === toEp.port) {
          to.handle(m.data, fromEp);
          net.delivered++;
        }
      }
    };
    deliver(fromA, db, p.a.publicKey, EP_A, EP_B);
    deliver(fromB, da, p.b.publicKey, EP_B, EP_A);
  }
}

/** Advances the clock by `ms` in ticks of `tickMs`, ticking both engines (and A's device, if asked) and wiring them. */
function run(p: ReturnType<typeof makePair>, da: Discovery, db: Discovery, net: Net, ms: number, tickMs = 100, tickDeviceA = false): void {
  for (let i = 0; i < ms; i += tickMs) {
    p.clock.advance(tickMs);
    if (tickDeviceA) p.a.tick();
    da.tick();
    db.tick();
    wire(p, da, db, net);
  }
}

t.test('two engines punch, confirm a direct path, keep it with heartbeats, and lose it when UDP dies', async (t) => {
  const p = makePair();
  p.a.setEndpoint(p.peerOfA, null); // nobody knows anybody's endpoint: only candidates via the relay
  const net: Net = { udpUp: true, delivered: 0 };
  const da = new Discovery(p.a, () => [EP_A], () => true);
  const db = new Discovery(p.b, () => [EP_B], () => true);
  for (let i = 0; i < 20; i++) {
    p.clock.advance(100);
    da.tick();
    db.tick();
    wire(p, da, db, net);
  }
  t.same(p.peerOfA.endpoint, EP_B, 'A learned B\'s endpoint from call-me-maybe and confirmed it with a pong');
  t.same(p.peerOfB.endpoint, EP_A, 'and B learned A\'s');
  t.ok(isDirectConfirmed(p.peerOfA, p.clock.now()) && isDirectConfirmed(p.peerOfB, p.clock.now()), 'both direct');
  t.ok(da.events.some((e) => e.type === 'direct-path'), 'a direct-path event for the log');
  t.ok(net.delivered > 0);

  run(p, da, db, net, 10000);
  t.ok(isDirectConfirmed(p.peerOfA, p.clock.now()), 'heartbeats keep the path confirmed over 10 s of silence');

  net.udpUp = false;
  run(p, da, db, net, 6000);
  t.notOk(isDirectConfirmed(p.peerOfA, p.clock.now()), 'without pongs the direct path expires (traffic goes via the relay)');
  net.udpUp = true;
  run(p, da, db, net, 8000);
  t.ok(isDirectConfirmed(p.peerOfA, p.clock.now()), 'a later punch restores it');
});

t.test('a faster path found later wins; one barely faster does not (hysteresis)', async (t) => {
  const p = makePair();
  p.a.setEndpoint(p.peerOfA, null);
  const key = (e: Endpoint) => `${e.address}:${e.port}`;
  const SLOW: Endpoint = { address: '192.0.2.99', port: 4000 };
  const SLOWISH: Endpoint = { address: '192.0.2.98', port: 4000 };
  const oneWayMs = new Map([[key(EP_B), 1], [key(SLOW), 20], [key(SLOWISH), 19]]);
  const open = new Set([key(SLOW)]);
  const da = new Discovery(p.a, () => [EP_A], () => true);
  let bUsesRelay = true;
  const db = new Discovery(p.b, () => [SLOW, SLOWISH, EP_B], () => bUsesRelay);
  const viaRelayFromA = relayEndpoint('wss://relay.test/', p.a.publicKey);
  const viaRelayFromB = relayEndpoint('wss://relay.test/', p.b.publicKey);
  const queue: { at: number; run: () => void }[] = [];
  // B's output: relay messages go at once; a pong goes back from the address that was pinged.
  const fromB = (pingedAt: Endpoint | null) => {
    for (const m of db.out.splice(0)) {
      if (m.to === null || m.to.relay) da.handle(m.data, viaRelayFromB);
      else if (pingedAt) {
        const d = oneWayMs.get(key(pingedAt))!;
        queue.push({ at: p.clock.now() + d, run: () => da.handle(m.data, pingedAt) });
      }
      // B's own punches toward A are not modelled: A learns B's candidates from call-me-maybe.
    }
  };
  const run = (ms: number) => {
    for (let i = 0; i < ms; i++) {
      p.clock.advance(1);
      if (i % 100 === 0) {
        p.peerOfA.lastDataMs = p.clock.now(); // data is flowing: a better path is worth finding
        da.tick();
        db.tick();
      }
      for (const m of da.out.splice(0)) {
        if (m.to === null || m.to.relay) {
          db.handle(m.data, viaRelayFromA);
          fromB(null);
        } else if (open.has(key(m.to))) {
          const to = m.to;
          queue.push({ at: p.clock.now() + oneWayMs.get(key(to))!, run: () => (db.handle(m.data, EP_A), fromB(to)) });
        }
      }
      fromB(null);
      for (const q of queue.filter((q) => q.at <= p.clock.now())) {
        queue.splice(queue.indexOf(q), 1);
        q.run();
      }
    }
  };
  run(2000);
  t.same(p.peerOfA.endpoint, SLOW, 'the only open path is taken');
  bUsesRelay = false; // from now on only A's own periodic discovery can find a better path
  open.add(key(SLOWISH));
  run(31_000);
  t.same(p.peerOfA.endpoint, SLOW, 'a path only 5% faster does not replace it');
  open.add(key(EP_B));
  run(31_000);
  t.same(p.peerOfA.endpoint, EP_B, 'a much faster path found by the periodic full discovery wins');
  t.ok(isDirectConfirmed(p.peerOfA, p.clock.now()));
});

t.test('an idle peer goes quiet: no heartbeats once no data has flowed for a while', async (t) => {
  const p = makePair();
  const net: Net = { udpUp: true, delivered: 0 };
  const da = new Discovery(p.a, () => [EP_A], () => true);
  const db = new Discovery(p.b, () => [EP_B], () => true);
  const step = (ms: number) => run(p, da, db, net, ms);
  p.peerOfA.lastDataMs = p.clock.now();
  step(10_000);
  const during = da.sent.ping;
  t.ok(during > 3, `pings while active (${during})`);
  step(60_000); // past the first minute and 45 s after the last data
  const before = da.sent.ping;
  step(30_000);
  t.equal(da.sent.ping - before, 0, 'no pings at all while idle');
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2')); // traffic again, through the device
  pump(p);
  step(300);
  t.ok(da.sent.ping > before, 'the next tick looks at the peer again (no wait for a full scan)');
  step(5_000);
  t.ok(da.sent.ping > before + 1, 'and heartbeats resume with traffic');
});

t.test('a long idle mesh: ticks look at no peer until one has traffic', async (t) => {
  const p = makePair();
  const net: Net = { udpUp: true, delivered: 0 };
  const da = new Discovery(p.a, () => [EP_A], () => true);
  const db = new Discovery(p.b, () => [EP_B], () => true);
  const step = (ms: number) => run(p, da, db, net, ms, 250, true);
  step(120_000);
  const before = da.sent.ping;
  step(61_000); // not on a full-scan tick (every 10 s)
  t.equal(da.sent.ping, before, 'idle: nothing sent');
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2')); // no session yet: staged, a handshake starts
  step(250);
  t.ok(da.sent.ping > before, 'a packet waiting for a session makes the peer watched at once: it is punched');
});

t.test('disco from a stranger is dropped before any crypto; tampering is dropped after', async (t) => {
  const p = makePair();
  const da = new Discovery(p.a, () => [EP_A], () => true);
  const stranger = generatePrivateKey(rnd);
  const nonce = rnd(24);
  const msg = encodeDiscoMessage({ type: 'ping', txid: rnd(12) });
  const sealed = sealDisco(discoKey(stranger, p.a.publicKey)!, nonce, msg, publicKeyOf(stranger));
  da.handle(encodeDiscoEnvelope(publicKeyOf(stranger), nonce, sealed), EP_B);
  t.equal(da.drops.counts['disco-unknown-sender'], 1);
  t.equal(da.out.length, 0, 'no answer to a stranger');
  const db = new Discovery(p.b, () => [EP_B], () => true);
  db.tick(); // B pings nobody yet, but we can forge from B's key without B's secret:
  const forged = sealDisco(rnd(32), nonce, msg, p.b.publicKey);
  da.handle(encodeDiscoEnvelope(p.b.publicKey, nonce, forged), EP_B);
  t.equal(da.drops.counts['disco-bad-box'], 1, 'a box not sealed with the peer key is refused');
  da.handle(new Uint8Array(10), EP_B);
  t.equal(da.drops.counts['disco-malformed'], 1);
});

t.test('birthday probing: a relay that drops mid-attempt is not a direct path; the attempt waits for it', async (t) => {
  const p = makePair();
  p.a.setEndpoint(p.peerOfA, null);
  p.b.setEndpoint(p.peerOfB, null);
  const net: Net = { udpUp: false, delivered: 0 };
  let relayUpA = true;
  const da = new Discovery(p.a, () => [{ address: '203.0.113.1', port: 51820 }], () => relayUpA);
  const db = new Discovery(p.b, () => [{ address: '203.0.113.2', port: 40000 }], () => true);
  da.ownNat = () => false; // A: endpoint-independent (the easy side)
  db.ownNat = () => true; // B: symmetric (the hard side)
  for (const d of [da, db]) d.enableBirthday({ sockets: 8, probes: 100, windowMs: 5000, hourlyBudget: 10_000, firstRetryMs: 2000, backoffMs: 30_000, maxBackoffMs: 60_000 });
  const state = () => da.birthday!.statusOf(p.peerOfA);
  for (let i = 0; i < 100 && state().state !== 'probing'; i++) run(p, da, db, net, 100);
  t.equal(state().state, 'probing', 'A probes B over the relay-agreed attempt');
  const sent = state().probesSent;
  relayUpA = false;
  run(p, da, db, net, 1000);
  t.equal(state().state, 'probing', 'still probing while the relay is down (not ended as "a direct path appeared")');
  t.equal(da.birthday!.counters.successes, 0, 'no meeting counted');
  relayUpA = true;
  run(p, da, db, net, 1000);
  t.ok(state().probesSent > sent, 'the probes due went out when the relay came back');
  run(p, da, db, net, 4000);
  t.equal(state().state, 'backing-off', 'the window passed without a meeting: a miss, with the quick retry');
});

/** Two engines with no UDP path and a relay up, A announcing `portA` and B `portB` at their public addresses. */
function relayedPair(portA: number, portB: number) {
  const p = makePair();
  p.a.setEndpoint(p.peerOfA, null);
  p.b.setEndpoint(p.peerOfB, null);
  const net: Net = { udpUp: false, delivered: 0 };
  const da = new Discovery(p.a, () => [{ address: '203.0.113.1', port: portA }], () => true);
  const db = new Discovery(p.b, () => [{ address: '203.0.113.2', port: portB }], () => true);
  return { p, net, da, db };
}

t.test('birthday probing: the hard side tells a fresh port over the relay, and the easy side probes beside it next', async (t) => {
  const { p, net, da, db } = relayedPair(51820, 40000);
  da.ownNat = () => false;
  db.ownNat = () => true;
  for (const d of [da, db]) d.enableBirthday({ sockets: 8, probes: 100, windowMs: 5000, hourlyBudget: 10_000, firstRetryMs: 2000, backoffMs: 30_000, maxBackoffMs: 60_000 });
  for (let i = 0; i < 100 && da.birthday!.statusOf(p.peerOfA).state !== 'probing'; i++) run(p, da, db, net, 100);
  t.equal(da.birthday!.statusOf(p.peerOfA).state, 'probing');
  db.announceFreshPort(p.peerOfB, 52000);
  const told = db.out.find((m) => m.to === null);
  t.ok(told, 'a call-me-maybe goes out at once, over the relay');
  wire(p, da, db, net);
  const probes: number[] = [];
  for (let i = 0; i < 10; i++) {
    p.clock.advance(100);
    da.tick();
    db.tick();
    for (const m of da.out) if (m.to && !m.to.relay && m.to.address === '203.0.113.2') probes.push(m.to.port);
    wire(p, da, db, net);
  }
  t.same(probes.slice(0, 4), [52001, 51999, 52002, 51998], "A's next probes go beside the fresh port");
});

t.test('birthday probing, both sides behind NATs that count up: a fresh port told starts the other side at once; each measures, then probes after the other\'s', async (t) => {
  const { p, net, da, db } = relayedPair(20001, 40001);
  for (const d of [da, db]) {
    d.ownNat = () => true;
    d.ownPortsInOrder = () => true;
    d.enableBirthday({ sockets: 8, probes: 100, windowMs: 5000, hourlyBudget: 10_000, firstRetryMs: 2000, backoffMs: 30_000, maxBackoffMs: 60_000 });
  }
  // The daemon's part: a fresh port for 'birthday-fresh' (told), another for 'birthday-measure'.
  const next = { a: 23000, b: 45000 };
  const serve = (d: Discovery, peer: typeof p.peerOfA, side: 'a' | 'b') => {
    for (let e = d.events.shift(); e; e = d.events.shift()) {
      if (e.type === 'birthday-fresh') d.announceFreshPort(peer, next[side]++);
      if (e.type === 'birthday-measure') d.birthdayMeasured(peer, (next[side] += 10));
    }
  };
  const probesOf = (d: Discovery, to: string) => d.out.filter((m) => m.to && !m.to.relay && m.to.address === to && m.to.sock === undefined).map((m) => m.to!.port);
  // Only A ticks: B's attempt can start only from what A tells it.
  for (let i = 0; i < 100 && !da.events.some((e) => e.type === 'birthday-fresh'); i++) {
    p.clock.advance(100);
    da.tick();
    wire(p, da, db, net); // each learns the other's NAT (caps) from their call-me-maybes
  }
  t.ok(da.events.some((e) => e.type === 'birthday-fresh'), "A's attempt starts: it asks for a fresh port");
  t.equal(db.birthday!.statusOf(p.peerOfB).state, 'idle', 'B has not started');
  serve(da, p.peerOfA, 'a');
  t.ok(da.out.some((m) => m.to === null), 'the fresh port goes out over the relay');
  wire(p, da, db, net);
  t.ok(db.events.some((e) => e.type === 'birthday-fresh'), "B's attempt starts at once, without a tick of its own");
  serve(db, p.peerOfB, 'b'); // its fresh port, then (it knows both) its measure: its probes go
  const fromB = probesOf(db, '203.0.113.1');
  t.equal(fromB.length, 381, 'B probes at once, from its data socket');
  wire(p, da, db, net);
  serve(da, p.peerOfA, 'a'); // A hears B's fresh port: measures, then probes
  const fromA = probesOf(da, '203.0.113.2');
  t.equal(fromA.length, 381, 'so does A');
  t.equal(Math.min(...fromA), 45000 + 1 + 11, "A aims past B's fresh port, shifted by the 11 ports its own counter moved");
  t.equal(Math.min(...fromB), 23000 + 1 + 11, 'and B past A\'s');
});
