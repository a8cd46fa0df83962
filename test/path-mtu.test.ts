// Path MTU, the pure parts: the ICMP "too big" answers and IPv4 fragments (wire/icmp.ts), the padded
// probe ping (wire/disco.ts), the search (transport/path-mtu.ts), and the device refusing, answering
// or fragmenting packets too big for a peer's path (tunnel/inside.ts).
import t from 'tap';
import { fragmentIpv4, packetTooBig } from '../src/wire/icmp.js';
import { DISCO_OVERHEAD, decodeDiscoMessage, encodeDiscoMessage } from '../src/wire/disco.js';
import { PMTU_COPIES, PMTU_MIN, PMTU_RESEARCH_MS, PathMtuSearch } from '../src/transport/path-mtu.js';
import { ipv4Packet, ipv6Packet } from './helpers/ip-packet.js';
import { makePair, pump } from './helpers/device-pair.js';
import { defaultRouteDevsV4, defaultRouteDevsV6, tunMtuFor } from '../src/daemon/underlay-mtu.js';

/** The Internet checksum over b[off, off+len) plus `extra`: 0 when the embedded checksum is right. */
function check(b: Uint8Array, off: number, len: number, extra = 0): number {
  let s = extra;
  for (let i = 0; i + 1 < len; i += 2) s += (b[off + i] << 8) | b[off + i + 1];
  if (len & 1) s += b[off + len - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}

const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const tcpLike = (len: number, df: boolean) => {
  const p = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(len - 20).map((_, i) => i & 0xff));
  p[9] = 6;
  if (df) p[6] = 0x40;
  return p;
};

t.test('ICMPv4 fragmentation needed: from the destination, checksums right, MTU named, header quoted', async (t) => {
  const orig = tcpLike(1400, true);
  const a = packetTooBig(orig, 0, orig.length, 1240)!;
  t.equal(a.length, 20 + 8 + 28, 'IP header, ICMP header, the original header and 8 bytes');
  t.equal(a[9], 1, 'ICMP');
  t.same([...a.subarray(12, 16)], [10, 0, 0, 2], 'from the original destination');
  t.same([...a.subarray(16, 20)], [10, 0, 0, 1], 'to the original source');
  t.equal(check(a, 0, 20), 0, 'IP header checksum');
  t.equal(a[20], 3);
  t.equal(a[21], 4, 'destination unreachable, fragmentation needed');
  t.equal(u16(a, 26), 1240, 'next-hop MTU');
  t.equal(check(a, 20, a.length - 20), 0, 'ICMP checksum');
  t.same([...a.subarray(28)], [...orig.subarray(0, 28)], 'the original header and first 8 bytes');
});

t.test('ICMPv6 packet too big: pseudo-header checksum, MTU at least 1280, within 1280 bytes', async (t) => {
  const orig = ipv6Packet('fd00::1', 'fd00::2', new Uint8Array(1400));
  const a = packetTooBig(orig, 0, orig.length, 1240)!;
  t.ok(a.length <= 1280, `fits IPv6's minimum MTU: ${a.length}`);
  t.equal(a[6], 58, 'ICMPv6');
  t.same([...a.subarray(8, 24)], [...orig.subarray(24, 40)], 'from the original destination');
  t.equal(a[40], 2, 'packet too big');
  t.equal(((a[44] << 24) | (a[45] << 16) | (a[46] << 8) | a[47]) >>> 0, 1280, 'never below 1280');
  let pseudo = 0;
  for (let i = 8; i < 40; i += 2) pseudo += u16(a, i);
  pseudo += a.length - 40 + 58;
  t.equal(check(a, 40, a.length - 40, pseudo), 0, 'ICMPv6 checksum over the pseudo-header');
  t.equal(u16(a, 4), a.length - 40, 'payload length');
  const a2 = packetTooBig(ipv6Packet('fd00::1', 'fd00::2', new Uint8Array(1400)), 0, 1440, 1400)!;
  t.equal(((a2[44] << 24) | (a2[45] << 16) | (a2[46] << 8) | a2[47]) >>> 0, 1400);
});

t.test('no ICMP error about an ICMP error or a later fragment', async (t) => {
  const err = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(1400));
  err[9] = 1;
  err[20] = 3; // an ICMP destination unreachable
  t.equal(packetTooBig(err, 0, err.length, 1240), null);
  const echo = ipv4Packet('10.0.0.1', '10.0.0.2', new Uint8Array(1400));
  echo[9] = 1;
  echo[20] = 8;
  t.not(packetTooBig(echo, 0, echo.length, 1240), null, 'an echo request is answered');
  const later = tcpLike(1400, false);
  later[7] = 100; // fragment offset 800
  t.equal(packetTooBig(later, 0, later.length, 1240), null);
  const v6err = ipv6Packet('fd00::1', 'fd00::2', new Uint8Array(1400));
  v6err[6] = 58;
  v6err[40] = 1;
  t.equal(packetTooBig(v6err, 0, v6err.length, 1280), null);
});

t.test('IPv4 fragments: each within the MTU, offsets in 8-byte units, MF until the last, payload intact', async (t) => {
  const orig = tcpLike(3001, false);
  const frags = fragmentIpv4(orig, 0, orig.length, 1240)!;
  t.equal(frags.length, 3);
  const payload: number[] = [];
  frags.forEach((f, i) => {
    t.ok(f.length <= 1240, `fragment ${i}: ${f.length} bytes`);
    t.equal(u16(f, 2), f.length, 'its total length');
    t.equal(check(f, 0, 20), 0, 'header checksum');
    const fo = u16(f, 6);
    t.equal((fo & 0x1fff) * 8, payload.length, 'offset where the previous ended');
    t.equal((fo & 0x2000) !== 0, i < frags.length - 1, 'MF on all but the last');
    payload.push(...f.subarray(20));
  });
  t.same(payload, [...orig.subarray(20)], 'the payload reassembles');
  t.equal(fragmentIpv4(orig, 0, orig.length, 24), null, 'no room for 8 bytes after the header');
});

t.test('a probe ping is padded to the datagram size it tests and still decodes', async (t) => {
  const txid = new Uint8Array(12).fill(7);
  const plain = encodeDiscoMessage({ type: 'ping', txid, padTo: 1240 + 32 - DISCO_OVERHEAD });
  t.equal(plain.length + DISCO_OVERHEAD, 1272, 'as long as a data packet carrying 1240 bytes');
  t.same(decodeDiscoMessage(plain), { type: 'ping', txid }, 'no roster serial read from the padding');
  const withSerial = encodeDiscoMessage({ type: 'ping', txid, serial: 42, padTo: 900 });
  t.equal(withSerial.length, 900);
  t.same(decodeDiscoMessage(withSerial), { type: 'ping', txid, serial: 42 });
});

/** Runs a search against a path that carries sizes up to `mtu`, losing each datagram with probability `loss`. */
function simulate(mtu: number, cap: number, loss = 0, seed = 1) {
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const s = new PathMtuSearch('192.0.2.2:51820', cap);
  let now = 0;
  let probes = 0;
  while (s.searching() && now < 60_000) {
    for (const size of s.due(now, 1, cap)) {
      for (let c = 0; c < PMTU_COPIES; c++) {
        probes++;
        if (size <= mtu && rand() >= loss) s.arrived(size);
      }
    }
    now += 250; // the next tick: it ends the round (unless every size arrived) and starts the next
  }
  return { s, probes, ms: now };
}

t.test('the search finds the exact MTU in a few rounds and a bounded number of probes', async (t) => {
  for (const mtu of [576, 1000, 1239, 1240, 1279, 1280, 1400, 1419, 1420]) {
    const { s, probes, ms } = simulate(mtu, 1420);
    t.equal(s.found(), mtu, `path ${mtu}: found in ${s.rounds} rounds, ${probes} probes, ${ms} ms`);
    t.equal(s.mtu(), mtu);
    t.ok(s.rounds <= 6 && probes <= 6 * 7 * PMTU_COPIES, `bounded: ${s.rounds} rounds`);
  }
  t.equal(simulate(1420, 1420).probes, 4, 'a path that takes the TUN MTU costs one round of two sizes');
  t.equal(simulate(100, 1420).s.found(), PMTU_MIN, 'nothing arrives: the IPv4 minimum');
});

t.test('with loss the search never settles above the path MTU', async (t) => {
  for (let seed = 1; seed <= 30; seed++) {
    const { s } = simulate(1240, 1420, 0.1, seed);
    t.ok(s.found()! <= 1240, `seed ${seed}: ${s.found()}`);
  }
});

t.test('the safe default until the search ends, the result for RESEARCH_MS, then a new search', async (t) => {
  const s = new PathMtuSearch('e', 1420);
  t.equal(s.mtu(), 1280, 'the safe default before any probe');
  t.same(s.due(0, null, 1420), [1280, 1420], 'first round: the safe default and the TUN MTU, smallest first');
  t.same(s.due(100, null, 1420), [], 'nothing more while the round is out');
  s.arrived(1280);
  s.arrived(1420);
  t.same(s.due(100, null, 1420), [], 'both arrived: done');
  t.equal(s.found(), 1420);
  t.same(s.due(PMTU_RESEARCH_MS - 1, null, 1420), [], 'the result holds');
  t.same(s.due(PMTU_RESEARCH_MS + 100, null, 1420), [1280, 1420], 'then the path is searched again');
  t.equal(s.mtu(), 1420, 'keeping the result meanwhile');
  t.same(s.due(PMTU_RESEARCH_MS + 1000, null, 1420), [663, 751, 839, 928, 1016, 1104, 1192], 'the path shrank: neither arrived');
  t.equal(s.mtu(), 1420, 'still the old result until the search ends');
  const small = new PathMtuSearch('e', 1420);
  small.due(0, null, 1420);
  t.same(small.due(400, null, 1420).length, 7, 'the safe default did not arrive');
  t.equal(small.mtu(), PMTU_MIN, 'the least MTU is used until a size is known to arrive');
  const c = new PathMtuSearch('e', 1420);
  c.due(0, null, 1420);
  c.arrived(1280);
  c.arrived(1420);
  c.due(1, null, 1420);
  t.same(c.due(2, null, 1380), [1280, 1380], 'the TUN MTU changed: a new search');
});

/** A pair with a session both ways; A's peer B limited to `mtu`. */
function limited(mtu: number) {
  const p = makePair();
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  pump(p);
  p.tunB.length = 0;
  p.peerOfA.mtu = mtu;
  return p;
}

t.test('the device: too big with DF is refused with ICMP into the TUN; without DF it is fragmented', async (t) => {
  const p = limited(1240);
  p.a.inside(tcpLike(1400, true));
  t.equal(p.a.out.net.length, 0, 'nothing sent');
  t.equal(p.a.out.tun.length, 1, 'one answer into the TUN');
  t.equal(p.a.out.tun[0][20], 3, 'fragmentation needed');
  t.equal(u16(p.a.out.tun[0], 26), 1240);
  t.equal(p.a.insideDrops.counts['too-big'], 1, 'counted');
  p.a.out.clear();
  p.a.inside(tcpLike(1400, true));
  t.equal(p.a.out.tun.length, 0, 'answers are rate-limited per peer');
  t.equal(p.a.insideDrops.counts['too-big'], 2);
  p.a.out.clear();
  p.clock.advance(20);
  const loose = tcpLike(1400, false);
  p.a.inside(loose);
  t.equal(p.a.out.net.length, 2, 'no DF: two fragments sent');
  t.ok(p.a.out.net.every((d) => d.data.length <= 1240 + 32), 'each within the path with its WireGuard overhead');
  pump(p);
  t.equal(p.tunB.length, 2, 'B receives both fragments');
  t.same([...p.tunB[0].subarray(20), ...p.tunB[1].subarray(20)], [...loose.subarray(20)], 'which carry the packet');
  p.tunB.length = 0;
  p.a.inside(tcpLike(1240, true));
  t.equal(p.a.out.net.length, 1, 'a packet at the path MTU goes');
  t.ok(p.a.out.net[0].data.length <= 1240 + 32, 'padding stays within the path MTU');
  p.a.out.clear();
  p.a.inside(ipv6Packet('fd00::1', 'fd00::2', new Uint8Array(1280 - 40)));
  t.equal(p.a.out.net.length, 1, 'IPv6 up to 1280 bytes is never refused');
  p.a.out.clear();
  p.a.inside(ipv6Packet('fd00::1', 'fd00::2', new Uint8Array(1300 - 40)));
  t.equal(p.a.out.net.length, 0);
  t.equal(p.a.out.tun[0]?.[40], 2, 'larger IPv6 gets packet too big');
  const q = limited(0);
  q.a.inside(tcpLike(1420, true));
  t.equal(q.a.out.net.length, 1, 'mtu 0: nothing is limited');
});

t.test('the underlay MTU comes from the default routes (/proc/net/route, /proc/net/ipv6_route)', async (t) => {
  const v4 = 'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n' +
    'eth0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n' +
    'eth1\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n';
  t.same(defaultRouteDevsV4(v4), ['eth0']);
  const v6 =
    '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth2\n' +
    '00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n' +
    'fd770000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     mesh0\n';
  t.same(defaultRouteDevsV6(v6), ['eth2'], 'not the unreachable stub on lo, not a /64');
  t.equal(tunMtuFor(1500), 1420);
  t.equal(tunMtuFor(9000), 8920);
  t.equal(tunMtuFor(1300), 1280, 'never below IPv6 minimum');
});
