// Two sans-IO devices exchanging bytes by hand: handshake, data, rekey, expiry, replay.
import t from 'tap';
import { makePair, pump, collect, EP_A, EP_B } from './helpers/device-pair.js';
import { ipv4Packet, ipv6Packet } from './helpers/ip-packet.js';
import { toHex } from './helpers/vectors.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { RESEND_GRACE_MIN_MS } from '../src/tunnel/device.js';
import { INITIATION_SIZE, RESPONSE_SIZE } from '../src/wire/wireguard.js';

const payload = (n: number, fill = 0xab) => new Uint8Array(n).fill(fill);

t.test('a packet triggers a handshake, then arrives intact; the reply flows back', async (t) => {
  const p = makePair();
  const pkt = ipv4Packet('10.0.0.1', '10.0.0.2', payload(100));
  p.a.inside(pkt);
  collect(p);
  t.equal(p.fromA.length, 1, 'one datagram leaves A');
  t.equal(p.fromA[0].data.length, INITIATION_SIZE, 'it is a 148-byte initiation');
  pump(p);
  t.equal(p.tunB.length, 1, 'B writes one packet to its TUN');
  t.equal(toHex(p.tunB[0]), toHex(pkt), 'the packet is unchanged');
  t.same(p.peerOfB.endpoint, EP_A, 'B learned A\'s endpoint from the handshake');
  t.ok(p.peerOfA.lastHandshakeWallMs > 0 && p.peerOfB.lastHandshakeWallMs > 0, 'both record the handshake');

  const back = ipv6Packet('fd00::2', 'fd00::1', payload(60));
  p.b.inside(back);
  pump(p);
  t.equal(p.tunA.length, 1);
  t.equal(toHex(p.tunA[0]), toHex(back), 'IPv6 works the other way');
  t.equal(p.a.outsideDrops.total() + p.b.outsideDrops.total(), 0, 'nothing dropped');
});

t.test('handshake with a preshared key; a mismatched key fails the response', async (t) => {
  const psk = new Uint8Array(32).fill(7);
  const p = makePair({ psk });
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  pump(p);
  t.equal(p.tunB.length, 1, 'works when both hold the psk');

  const q = makePair({ psk });
  q.peerOfB.setPresharedKey(new Uint8Array(32).fill(8));
  q.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(q);
  const init = q.fromA.splice(0);
  for (const d of init) q.b.outside(d.data, EP_A);
  collect(q);
  t.equal(q.fromB[0].data.length, RESPONSE_SIZE, 'B answers (it cannot tell yet)');
  pump(q);
  t.equal(q.a.outsideDrops.counts['handshake-decrypt'], 1, 'A cannot open the response');
  t.equal(q.tunB.length, 0);
});

t.test('replayed transport packets and replayed initiations are dropped and counted', async (t) => {
  const p = makePair();
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(p);
  const init = p.fromA[0].data.slice();
  pump(p);
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(40, 1)));
  collect(p);
  const data = p.fromA[0].data.slice();
  pump(p);
  const before = p.tunB.length;
  p.b.outside(data, EP_A);
  t.equal(p.b.outsideDrops.counts.replay, 1, 'transport replay counted');
  p.clock.advance(1000);
  p.b.outside(init, EP_A);
  t.equal(p.b.outsideDrops.counts['replayed-timestamp'], 1, 'initiation replay counted');
  collect(p);
  t.equal(p.tunB.length, before, 'nothing new reached the TUN');
  t.equal(p.fromB.length, 0, 'no response to a replayed initiation');
});

t.test('garbage, truncation and bit flips never throw and are counted', async (t) => {
  const p = makePair();
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(p);
  const init = p.fromA[0].data.slice();
  pump(p);
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(p);
  const data = p.fromA[0].data.slice();
  p.fromA.length = 0;
  for (let len = 0; len < 200; len++) p.b.outside(new Uint8Array(len).map(() => Math.random() * 256), EP_A);
  for (const m of [init, data]) {
    for (let cut = 0; cut < m.length; cut++) p.b.outside(m.subarray(0, cut), EP_A);
    for (let bit = 0; bit < m.length * 8; bit += 7) {
      const f = m.slice();
      f[bit >> 3] ^= 1 << (bit & 7);
      p.b.outside(f, EP_A);
    }
  }
  const d = p.b.outsideDrops.counts;
  t.ok(d['not-wireguard'] > 0 && d['bad-size'] > 0 && d['bad-mac1'] > 0 && d['decrypt-failed'] > 0, JSON.stringify(d));
  const before = p.tunB.length;
  p.b.outside(data, EP_A);
  collect(p);
  t.equal(p.tunB.length, before + 1, 'the genuine packet still gets through after the storm');
});

t.test('a packet whose inner source is not in the peer\'s AllowedIPs is refused', async (t) => {
  const p = makePair();
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  pump(p);
  const n = p.tunB.length;
  p.a.inside(ipv4Packet('10.9.9.9', '10.0.0.2')); // A sends with a source B does not allow for A
  pump(p);
  t.equal(p.tunB.length, n);
  t.equal(p.b.outsideDrops.counts['source-not-allowed'], 1);
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.99'));
  t.equal(p.a.insideDrops.counts['no-route'], 1, 'no peer for the destination');
});

t.test('rekey after REKEY_AFTER_TIME keeps a stream flowing without loss', async (t) => {
  const p = makePair();
  let sent = 0;
  const send = () => {
    p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(32, sent & 0xff)));
    p.b.inside(ipv4Packet('10.0.0.2', '10.0.0.1', payload(32, sent & 0xff)));
    sent++;
  };
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(32, 0xff)));
  pump(p);
  p.tunB.length = 0;
  const firstKey = p.peerOfA.keypairs.current;
  let initiations = 0;
  for (let s = 0; s < 400; s++) {
    p.clock.advance(1000);
    pump(p);
    p.a.tick();
    p.b.tick();
    send();
    collect(p);
    initiations += p.fromA.filter((d) => d.data.length === INITIATION_SIZE).length;
    pump(p);
  }
  t.equal(p.tunB.length, sent, 'every packet A sent arrived at B');
  t.equal(p.tunA.length, sent, 'every packet B sent arrived at A');
  t.not(p.peerOfA.keypairs.current, firstKey, 'the session was replaced');
  t.ok(initiations >= 3, `rekeyed about every 120 s (saw ${initiations} initiations in 400 s)`);
  t.equal(p.a.outsideDrops.total() + p.b.outsideDrops.total(), 0, 'no drops across rekeys');
});

t.test('sessions expire after REJECT_AFTER_TIME and keys are zeroed after 3×', async (t) => {
  const p = makePair();
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  pump(p);
  const kp = p.peerOfA.keypairs.current!;
  p.clock.advance(180_001);
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(p);
  t.equal(p.fromA.length, 1);
  t.equal(p.fromA[0].data.length, INITIATION_SIZE, 'an expired session is not used: a handshake starts instead');
  p.fromA.length = 0;
  p.clock.advance(540_000);
  for (let i = 0; i < 20; i++) {
    p.clock.advance(5_500);
    p.a.tick();
  }
  p.a.out.clear();
  t.equal(p.peerOfA.keypairs.current, null, 'keys zeroed');
  t.ok(kp.sendKey.every((b) => b === 0), 'key bytes wiped');
});

t.test('handshake retries every REKEY_TIMEOUT and gives up after REKEY_ATTEMPT_TIME', async (t) => {
  const p = makePair();
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(p);
  let sent = p.fromA.length;
  p.fromA.length = 0;
  for (let ms = 0; ms < 120_000; ms += 100) {
    p.clock.advance(100);
    p.a.tick();
    collect(p);
    sent += p.fromA.length;
    p.fromA.length = 0;
  }
  t.equal(sent, 19, '1 initiation + 18 retries (90 s / 5 s)');
  t.equal(p.a.insideDrops.counts['handshake-gave-up'], 1, 'the staged packet is dropped');
});

t.test('passive keepalive: B answers A\'s data with a keepalive after 10 s of silence', async (t) => {
  const p = makePair();
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  pump(p);
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(p);
  for (const d of p.fromA.splice(0)) p.b.outside(d.data, EP_A);
  p.b.out.clear();
  p.clock.advance(10_001);
  p.b.tick();
  collect(p);
  t.equal(p.fromB.length, 1);
  t.equal(p.fromB[0].data.length, 32, 'a 32-byte keepalive');
});

t.test('persistent keepalive starts a handshake at start and keeps sending', async (t) => {
  const p = makePair({ keepaliveA: 25 });
  p.a.start();
  collect(p);
  t.equal(p.fromA.length, 1, 'start sends an initiation');
  pump(p);
  p.clock.advance(25_001);
  p.a.tick();
  collect(p);
  t.equal(p.fromA.length, 1);
  t.equal(p.fromA[0].data.length, 32, 'a keepalive after 25 s');
});

t.test('under load, initiations without mac2 get a cookie reply; with the cookie they succeed', async (t) => {
  const p = makePair({ underLoadHandshakesPerSecond: 0 });
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(p);
  for (const d of p.fromA.splice(0)) p.b.outside(d.data, EP_A);
  collect(p);
  t.equal(p.b.outsideDrops.counts['cookie-sent'], 1);
  t.equal(p.fromB.length, 1);
  t.equal(p.fromB[0].data.length, 64, 'a cookie reply');
  for (const d of p.fromB.splice(0)) p.a.outside(d.data, EP_A);
  t.equal(p.a.outsideDrops.total(), 0, 'A accepted the cookie');
  // Both sides are under load, so each demands a cookie once; retries then carry mac2.
  for (let ms = 0; ms < 20_000 && p.tunB.length === 0; ms += 100) {
    p.clock.advance(100);
    p.a.tick();
    p.b.tick();
    pump(p);
  }
  t.equal(p.tunB.length, 1, 'the retried initiation carries mac2 and the handshake completes');
  t.ok(p.b.outsideDrops.counts['rate-limited'] === 0, 'a legitimate peer is not rate limited');
});

t.test('a packet waiting for the handshake survives reuse of the TUN read buffer', async (t) => {
  const p = makePair();
  const tunBuffer = Buffer.alloc(2048); // the daemon reads every packet into the same slots
  const first = ipv4Packet('10.0.0.1', '10.0.0.2', payload(64, 0x11));
  tunBuffer.set(first, 0);
  p.a.inside(tunBuffer.subarray(0, first.length));
  tunBuffer.set(ipv6Packet('fe80::1', 'ff02::2', payload(8, 0x22)), 0); // the next read overwrites the slot
  pump(p);
  t.equal(p.tunB.length, 1);
  t.equal(toHex(p.tunB[0]), toHex(first), 'B receives the packet as it was read, not what replaced it');
});

t.test('crossing initiations: both sides send at once and both packets arrive without waiting for a retry', async (t) => {
  const p = makePair();
  p.peerOfB.endpoint = EP_A;
  const ab = ipv4Packet('10.0.0.1', '10.0.0.2', payload(64, 1));
  const ba = ipv4Packet('10.0.0.2', '10.0.0.1', payload(64, 2));
  p.a.inside(ab);
  p.b.inside(ba);
  collect(p);
  t.equal(p.fromA[0].data.length, INITIATION_SIZE, 'A initiates');
  t.equal(p.fromB[0].data.length, INITIATION_SIZE, 'B initiates at the same moment');
  pump(p); // no clock movement: no retry timer can fire
  t.equal(p.tunB.length, 1, 'B got A\'s packet');
  t.equal(p.tunA.length, 1, 'A got B\'s packet');
  t.equal(toHex(p.tunB[0]), toHex(ab));
  t.equal(toHex(p.tunA[0]), toHex(ba));
  t.equal(p.a.outsideDrops.total() + p.b.outsideDrops.total(), 0, 'no response was refused');
  // And the sessions keep working both ways.
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(32, 3)));
  p.b.inside(ipv4Packet('10.0.0.2', '10.0.0.1', payload(32, 4)));
  pump(p);
  t.equal(p.tunB.length, 2);
  t.equal(p.tunA.length, 2);
});

t.test('a peer that becomes reachable gets a lost initiation again within the grace, and a restarted peer a new session', async (t) => {
  const p = makePair();
  p.peerOfB.endpoint = EP_A;
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(40, 1)));
  collect(p);
  t.equal(p.fromA.splice(0).length, 1, 'the first initiation is lost (the peer was not there)');
  p.clock.advance(30); // far less than REKEY_TIMEOUT: no retry is due
  p.a.tick();
  collect(p);
  t.equal(p.fromA.length, 0, 'nothing would be sent before the 5 s retry');
  p.a.handshakeSoon(p.peerOfA, 0);
  collect(p);
  t.equal(p.fromA.length, 0, 'not within RESEND_GRACE_MIN_MS of the first: it may still be answered');
  p.clock.advance(RESEND_GRACE_MIN_MS);
  p.a.tick();
  collect(p);
  t.equal(p.fromA[0]?.data.length, INITIATION_SIZE, 'no answer within the grace: a new initiation leaves');
  pump(p);
  t.equal(p.tunB.length, 1, 'and the waiting packet arrives');

  // B restarts: same key, no sessions. A's next packets would be dropped by it until A rekeys.
  p.b.removePeer(p.peerOfB.id);
  p.b.addPeer({ publicKey: p.a.publicKey, endpoint: EP_A }, [parseCidr('10.0.0.1/32')!]);
  p.clock.advance(1000);
  p.a.handshakeSoon(p.peerOfA, 0);
  collect(p);
  t.equal(p.fromA[0]?.data.length, INITIATION_SIZE, 'a peer with a session handshakes too, within REKEY_TIMEOUT of the last one');
  pump(p);
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(40, 2)));
  pump(p);
  t.equal(p.tunB.length, 2, 'the new session carries data');
});

t.test('an initiation that was answered is not re-sent when the peer becomes reachable', async (t) => {
  const p = makePair();
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(40, 1)));
  collect(p);
  const init = p.fromA.splice(0);
  p.a.handshakeSoon(p.peerOfA, 0); // peer-present arrives just after the initiation got through
  for (const d of init) p.b.outside(d.data, EP_A);
  collect(p);
  p.clock.advance(5);
  pump(p);
  t.equal(p.tunB.length, 1, 'the first handshake completed');
  p.clock.advance(RESEND_GRACE_MIN_MS);
  p.a.tick();
  collect(p);
  t.equal(p.fromA.filter((d) => d.data.length === INITIATION_SIZE).length, 0, 'and the early re-send was called off');
});

t.test('a direct path found while an initiation is in flight does not start a second handshake that would void the first', async (t) => {
  // A fresh start: A's first initiation goes via the relay; a disco pong sets B's endpoint a few
  // milliseconds later, before the response is back. A second initiation then would land inside
  // B's 20 ms initiation-flood window and be refused, A would ignore the answer to the first, and
  // the waiting packet would wait for the 5 s retry (a rare miss of the first-reply test).
  const p = makePair();
  p.peerOfA.endpoint = null; // known only through the relay so far
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(40, 1)));
  collect(p);
  const viaRelay = p.fromA.splice(0);
  t.equal(viaRelay[0]?.data.length, INITIATION_SIZE, 'the first initiation leaves (through the relay)');
  p.clock.advance(2);
  for (const d of viaRelay) p.b.outside(d.data, EP_A);
  collect(p);
  const response = p.fromB.splice(0);
  t.equal(response[0]?.data.length, RESPONSE_SIZE, 'B answers it');
  p.clock.advance(1);
  p.a.setEndpoint(p.peerOfA, EP_B); // the pong: a direct path
  collect(p);
  t.equal(p.fromA.filter((d) => d.data.length === INITIATION_SIZE).length, 0, 'no second initiation while the first may still be answered');
  p.clock.advance(1);
  for (const d of response) p.a.outside(d.data, EP_B);
  pump(p);
  t.equal(p.tunB.length, 1, 'the answer to the first completes the handshake and the waiting packet arrives at once');
  t.equal(p.a.outsideDrops.total() + p.b.outsideDrops.total(), 0, 'nothing was refused on the way');
});

t.test('a direct path found after an initiation was lost re-sends it within the grace, not at the 5 s retry', async (t) => {
  const p = makePair();
  p.peerOfA.endpoint = null;
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(40, 1)));
  collect(p);
  p.fromA.splice(0); // lost: the relay did not have B yet
  p.clock.advance(5);
  p.a.setEndpoint(p.peerOfA, EP_B);
  p.clock.advance(RESEND_GRACE_MIN_MS);
  p.a.tick();
  pump(p);
  t.equal(p.tunB.length, 1, 'a new initiation went to the endpoint and the packet arrived');
  // Long after the last initiation, a new endpoint sends one at once (a configured endpoint change).
  const q = makePair();
  q.peerOfA.endpoint = null;
  q.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2', payload(40, 1)));
  collect(q);
  q.fromA.splice(0);
  q.clock.advance(1000);
  q.a.setEndpoint(q.peerOfA, EP_B);
  collect(q);
  t.equal(q.fromA.filter((d) => d.data.length === INITIATION_SIZE).length, 1, 'a second past the last initiation, the new endpoint gets one at once');
  pump(q);
  t.equal(q.tunB.length, 1, 'and the packet arrives');
});
