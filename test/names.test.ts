// Names from the roster (src/mesh/names.ts): A, AAAA and PTR for members, NXDOMAIN for names no
// member has, REFUSED outside the mesh, truncation over UDP, and no throw on garbage.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { generatePrivateKey, publicKeyOf } from '../src/crypto/keys.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { answerQuery, buildZone, NAME_TTL_SEC } from '../src/mesh/names.js';
import type { RosterMember } from '../src/mesh/roster.js';

const key = () => publicKeyOf(generatePrivateKey((n) => new Uint8Array(randomBytes(n))));
const host = (s: string) => ({ ...parseCidr(s)! });
const member = (name: string, addrs: string[], expiresMs: number | null = null): RosterMember => ({ name, publicKey: key(), addresses: addrs.map(host), groups: [], expiresMs, endpoint: null });
const zone = buildZone(
  {
    domain: 'mesh',
    prefixes: [parseCidr('100.64.0.0/10')!, parseCidr('fd7a:115c:a1e0::/48')!],
    members: [member('bob', ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128']), member('gone', ['100.64.0.9/32'], 1000)],
  },
  2000,
);
const ask = (name: string, type: string, tcp = false) => {
  const q = dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A' }] });
  const r = answerQuery(q, zone, tcp);
  if (!r.ok) throw new Error(r.reason);
  return dnsPacket.decode(Buffer.from(r.bytes)) as unknown as dnsPacket.Packet & { rcode: string; flag_aa: boolean; flag_tc: boolean };
};

t.test('members by name, both ways', async (t) => {
  const a = ask('bob.mesh', 'A');
  t.same([a.rcode, a.id, a.flag_aa, a.answers?.map((x) => [x.type, (x as { data: string }).data, (x as { ttl: number }).ttl])], ['NOERROR', 4242, true, [['A', '100.64.0.2', NAME_TTL_SEC]]]);
  t.same(ask('BOB.Mesh.', 'AAAA').answers?.map((x) => (x as { data: string }).data), ['fd7a:115c:a1e0::2'], 'case-insensitive, trailing dot');
  t.same(ask('2.0.64.100.in-addr.arpa', 'PTR').answers?.map((x) => (x as { data: string }).data), ['bob.mesh'], 'PTR for an IPv4 mesh address');
  t.same(ask('2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa', 'PTR').answers?.map((x) => (x as { data: string }).data), ['bob.mesh'], 'and an IPv6 one');
  t.same([ask('bob.mesh', 'MX').rcode, ask('bob.mesh', 'MX').answers], ['NOERROR', []], 'another type: no data, no error');
});

t.test('what is not a member, and what is not ours', async (t) => {
  t.equal(ask('carol.mesh', 'A').rcode, 'NXDOMAIN', 'no such member');
  t.equal(ask('gone.mesh', 'A').rcode, 'NXDOMAIN', 'an expired member has no name');
  t.equal(ask('5.0.64.100.in-addr.arpa', 'PTR').rcode, 'NXDOMAIN', 'a mesh address no one has');
  const other = ask('example.com', 'A');
  t.same([other.rcode, other.flag_aa], ['REFUSED', false], 'another domain: REFUSED, not authoritative');
  t.equal(ask('1.0.0.10.in-addr.arpa', 'PTR').rcode, 'REFUSED', 'a reverse name outside the mesh');
});

t.test('big answers are truncated over UDP and whole over TCP; garbage never throws', async (t) => {
  const many = buildZone({ domain: 'mesh', prefixes: [parseCidr('100.64.0.0/10')!], members: [member('big', Array.from({ length: 8 }, (_, i) => `100.64.1.${i + 1}/32`))] });
  const q = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'big.mesh', type: 'A' }] });
  const udp = answerQuery(q, many, false);
  const tcp = answerQuery(q, many, true);
  t.ok(udp.ok && tcp.ok);
  if (udp.ok && tcp.ok) {
    t.equal(dnsPacket.decode(Buffer.from(tcp.bytes)).answers?.length, 8);
    t.ok(udp.bytes.length <= 512);
  }
  let answered = 0;
  for (let i = 0; i < 10000; i++) {
    const r = answerQuery(new Uint8Array(randomBytes(Math.floor(Math.random() * 100))), zone, false);
    if (r.ok) answered++;
  }
  t.ok(answered < 10000, `10,000 random datagrams: ${answered} answered (FORMERR/REFUSED), the rest refused as drops, none thrown`);
  t.equal(ask('bob.mesh', 'A').rcode, 'NOERROR', 'and a real query is still answered');
  const resp = dnsPacket.encode({ type: 'response', id: 1, questions: [{ name: 'bob.mesh', type: 'A' }] });
  t.same(answerQuery(resp, zone, false), { ok: false, reason: 'dns-not-query' }, 'a response is not answered');
});
