// The signed roster (src/mesh/roster.ts) and the admin's edits (src/mesh/edit.ts): signatures over
// the exact bytes, refusals by reason, growing serials, address allocation, and no throw on junk.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { generateMeshKey } from '../src/crypto/ed25519.js';
import { generatePrivateKey, keyToBase64, publicKeyOf, type NodePublicKey } from '../src/crypto/keys.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { activeMembers, checkRoster, MAX_ROSTER_BYTES, ROSTER_HEADER_LEN, signRoster, type RosterDoc } from '../src/mesh/roster.js';
import { addMember, addPending, newRoster, removeMember } from '../src/mesh/edit.js';
import { formatCidr } from '../src/tunnel/cidr.js';

const rng = (n: number) => new Uint8Array(randomBytes(n));
const nodeKey = (): NodePublicKey => publicKeyOf(generatePrivateKey(rng));
const NOW = 1_780_000_000_000;

function mesh(prefixes = ['100.64.0.0/10', 'fd7a:115c:a1e0::/48']) {
  const mk = generateMeshKey(rng);
  const doc = newRoster({ meshKey: mk.publicKey, prefixes: prefixes.map((p) => parseCidr(p)!), relays: ['wss://relay.example:443/'], stun: ['relay.example:3478'], first: { name: 'admin', publicKey: nodeKey() } }, NOW);
  return { mk, doc };
}

t.test('a new mesh: serial 1, the admin host with the first address of each prefix', async (t) => {
  const { mk, doc } = mesh();
  t.equal(doc.serial, 1);
  t.equal(doc.domain, 'mesh');
  t.same(doc.members.map((m) => [m.name, m.addresses.map(formatCidr)]), [['admin', ['100.64.0.1/32', 'fd7a:115c:a1e0::1/128']]]);
  const signed = signRoster(doc, mk.privateKey);
  const r = checkRoster(signed, mk.publicKey, 0);
  t.ok(r.ok, 'accepted under its mesh key');
  if (r.ok) {
    t.equal(r.roster.serial, 1);
    t.same(r.roster.members[0].publicKey, doc.members[0].publicKey);
    t.same([...r.roster.signed], [...signed], 'the exact bytes are kept, to store and pass on');
  }
});

t.test('edits: members added with the next free address, duplicates refused, removal, serial grows', async (t) => {
  const { doc } = mesh();
  const laptopKey = nodeKey();
  const d2 = addMember(doc, { name: 'Laptop', publicKey: laptopKey, groups: ['dev', 'OPS', 'dev'] }, NOW + 1);
  t.equal(d2.serial, 2);
  const laptop = d2.members.find((m) => m.name === 'laptop')!;
  t.same(laptop.addresses.map(formatCidr), ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'], 'the next free addresses');
  t.same(laptop.groups, ['dev', 'ops'], 'groups lower-cased, once each');
  t.throws(() => addMember(d2, { name: 'laptop', publicKey: nodeKey() }, NOW), /already called "laptop"/);
  t.throws(() => addMember(d2, { name: 'other', publicKey: laptopKey }, NOW), /is already member "laptop"/);
  t.throws(() => addMember(d2, { name: 'db1', publicKey: nodeKey(), addresses: [parseCidr('100.64.0.2/32')!] }, NOW), /member "laptop"'s address/);
  t.throws(() => addMember(d2, { name: 'db1', publicKey: nodeKey(), addresses: [parseCidr('10.0.0.9/32')!] }, NOW), /outside the mesh's prefixes/);
  t.throws(() => addMember(d2, { name: 'db1', publicKey: nodeKey(), addresses: [parseCidr('100.64.0.0/24')!] }, NOW), /not a single address/);
  t.throws(() => addMember(d2, { name: 'no_underscores', publicKey: nodeKey() }, NOW), /not a member name/);
  t.throws(() => addMember(d2, { name: 'db1', publicKey: nodeKey(), groups: ['a b'] }, NOW), /not a group name/);
  const d3 = addMember(d2, { name: 'db1', publicKey: nodeKey(), addresses: [parseCidr('100.64.0.9/32')!] }, NOW + 2);
  t.same(d3.members.find((m) => m.name === 'db1')!.addresses.map(formatCidr), ['100.64.0.9/32']);
  const { doc: d4, removed } = removeMember(d3, 'laptop', NOW + 3);
  t.equal(removed.name, 'laptop');
  t.equal(d4.serial, 4);
  t.same(d4.members.map((m) => m.name), ['admin', 'db1']);
  t.same(removeMember(d3, keyToBase64(laptopKey), NOW).removed.name, 'laptop', 'or by its key');
  t.throws(() => removeMember(d4, 'laptop', NOW), /no member "laptop"/);
  const d5 = addMember(d4, { name: 'next', publicKey: nodeKey() }, NOW);
  t.same(d5.members.find((m) => m.name === 'next')!.addresses.map(formatCidr), ['100.64.0.2/32', 'fd7a:115c:a1e0::2/128'], 'a removed member\'s address is free again');
});

t.test('refusals, each with its reason', async (t) => {
  const { mk, doc } = mesh();
  const signed = signRoster(doc, mk.privateKey);
  const other = generateMeshKey(rng);

  t.match(checkRoster(signed, mk.publicKey, 1), { ok: false, reason: 'roster-stale' }, 'the serial it already has');
  t.match(checkRoster(signed, mk.publicKey, 7), { ok: false, reason: 'roster-stale' }, 'an older one');
  const forged = signRoster({ ...doc, serial: 99 }, other.privateKey);
  t.match(checkRoster(forged, mk.publicKey, 0), { ok: false, reason: 'roster-bad-signature' }, 'our mesh named, another key signed');
  const foreign = signRoster({ ...doc, meshKey: other.publicKey }, other.privateKey);
  t.match(checkRoster(foreign, mk.publicKey, 0), { ok: false, reason: 'roster-wrong-mesh' }, 'another mesh\'s own roster');
  const tampered = Uint8Array.from(signed);
  const at = Buffer.from(signed).indexOf('"serial":1') + '"serial":'.length;
  t.ok(at > ROSTER_HEADER_LEN, 'the serial is in the document');
  tampered[at] = '9'.charCodeAt(0);
  t.match(checkRoster(tampered, mk.publicKey, 0), { ok: false, reason: 'roster-bad-signature' }, 'one byte of the document changed');
  t.match(checkRoster(signed.subarray(0, signed.length - 1), mk.publicKey, 0), { ok: false, reason: 'roster-malformed' }, 'truncated');
  t.match(checkRoster(new Uint8Array(MAX_ROSTER_BYTES + 1), mk.publicKey, 0), { ok: false, reason: 'roster-oversized' });
  const appended = new Uint8Array(signed.length + 1);
  appended.set(signed);
  t.match(checkRoster(appended, mk.publicKey, 0), { ok: false, reason: 'roster-malformed' }, 'trailing bytes');

  // A signed document that breaks the rules (the admin's tools refuse to make one) is refused too.
  const dup: RosterDoc = { ...doc, serial: 2, members: [doc.members[0], { ...doc.members[0], publicKey: nodeKey() }] };
  t.match(checkRoster(signRoster(dup, mk.privateKey), mk.publicKey, 0), { ok: false, reason: 'roster-invalid', detail: /two members are called "admin"/ });
  const outside: RosterDoc = { ...doc, serial: 2, members: [{ ...doc.members[0], addresses: [parseCidr('192.168.1.1/32')!] }] };
  t.match(checkRoster(signRoster(outside, mk.privateKey), mk.publicKey, 0), { ok: false, reason: 'roster-invalid', detail: /outside the mesh's prefixes/ });
});

t.test('expiry and pending enrollments', async (t) => {
  const { mk, doc } = mesh(['100.64.0.0/24']);
  const d2 = addMember(doc, { name: 'temp', publicKey: nodeKey(), expiresMs: NOW + 1000 }, NOW);
  t.same(activeMembers(d2, NOW).map((m) => m.name), ['admin', 'temp']);
  t.same(activeMembers(d2, NOW + 1000).map((m) => m.name), ['admin'], 'an expired member is no longer one');
  const enrol = nodeKey();
  const d3 = addPending(d2, { key: enrol, name: 'laptop', expiresMs: NOW + 60_000, inviter: nodeKey() }, NOW);
  t.throws(() => addPending(d3, { key: nodeKey(), name: 'laptop', expiresMs: NOW + 60_000, inviter: nodeKey() }, NOW), /already called "laptop"/);
  const r = checkRoster(signRoster(d3, mk.privateKey), mk.publicKey, 0);
  t.ok(r.ok && r.roster.pending.length === 1 && r.roster.pending[0].name === 'laptop', 'pending enrollments survive the round trip');
  const joined = addMember(d3, { name: 'laptop', publicKey: enrol }, NOW);
  t.equal(joined.pending.length, 0, 'the enrollment is gone once its key is a member');
});

t.test('10,000 members fit, and check fast enough', async (t) => {
  let { mk, doc } = mesh(['100.64.0.0/10']);
  const members = [...doc.members];
  for (let i = 1; i <= 10_000; i++) members.push({ name: `host-${i}`, publicKey: nodeKey(), addresses: [{ ...parseCidr(`100.64.${(i >> 8) & 255}.${i & 255}/32`)!, bits: 32 }], groups: ['dev'], expiresMs: null, endpoint: null });
  members.splice(1, 1); // host-1 would be 100.64.0.1, the admin's
  doc = { ...doc, serial: 2, members };
  const signed = signRoster(doc, mk.privateKey);
  t.ok(signed.length < MAX_ROSTER_BYTES, `${(signed.length / 1e6).toFixed(2)} MB`);
  const started = performance.now();
  const r = checkRoster(signed, mk.publicKey, 1);
  t.ok(r.ok, r.ok ? 'accepted' : `${r.reason}: ${r.detail}`);
  t.comment(`checked ${members.length} members in ${(performance.now() - started).toFixed(0)} ms`);
});

t.test('random and mutated bytes never throw', async (t) => {
  const { mk, doc } = mesh();
  const signed = signRoster(doc, mk.privateKey);
  const reasons = new Map<string, number>();
  for (let i = 0; i < 3000; i++) {
    const b = i % 2 ? rng(1 + Math.floor(Math.random() * 300)) : Uint8Array.from(signed);
    for (let k = 0; k < 3; k++) b[Math.floor(Math.random() * b.length)] ^= 1 << Math.floor(Math.random() * 8);
    const r = checkRoster(b, mk.publicKey, 0);
    const why = r.ok ? 'accepted' : r.reason;
    reasons.set(why, (reasons.get(why) ?? 0) + 1);
  }
  t.notOk(reasons.has('accepted'), `every one refused: ${JSON.stringify(Object.fromEntries(reasons))}`);
  t.ok(checkRoster(signed, mk.publicKey, 0).ok, 'and the original still accepted');
});
