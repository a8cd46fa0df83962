// Roster deltas (src/mesh/delta.ts) and roster parts (src/wire/roster-parts.ts): a change travels as
// a few lines and rebuilds the exact signed bytes; damaged deltas and parts out of order are refused.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { generateMeshKey } from '../src/crypto/ed25519.js';
import { generatePrivateKey, publicKeyOf, type NodePublicKey } from '../src/crypto/keys.js';
import { checkRoster, signRoster, type RosterDoc } from '../src/mesh/roster.js';
import { addMember, newRoster, removeMember } from '../src/mesh/edit.js';
import { applyDelta, deltaBaseSerial, makeDelta } from '../src/mesh/delta.js';
import { RosterAssembler, rosterParts } from '../src/wire/roster-parts.js';
import { decodeRelayFrame, FRAME_ROSTER } from '../src/wire/relay.js';
import { parseCidr } from '../src/tunnel/cidr.js';

const rng = (n: number) => new Uint8Array(randomBytes(n));
const nodeKey = (): NodePublicKey => publicKeyOf(generatePrivateKey(rng));
const NOW = 1_780_000_000_000;
const MAX = 8 * 1024 * 1024;

function big(n: number) {
  const mk = generateMeshKey(rng);
  let doc: RosterDoc = newRoster({ meshKey: mk.publicKey, prefixes: [parseCidr('100.64.0.0/10')!], relays: [], stun: [], first: { name: 'admin', publicKey: nodeKey() } }, NOW);
  const members = [...doc.members];
  for (let i = 2; i <= n; i++) members.push({ name: `host-${i}`, publicKey: nodeKey(), addresses: [{ ...parseCidr(`100.64.${(i >> 8) & 255}.${i & 255}/32`)!, bits: 32 }], groups: [], expiresMs: null, endpoint: null });
  doc = { ...doc, members };
  return { mk, doc };
}

t.test('edits travel as small deltas that rebuild the exact signed roster', async (t) => {
  const { mk, doc } = big(2000);
  const s1 = signRoster(doc, mk.privateKey);
  const edits: [string, RosterDoc][] = [
    ['add', addMember(doc, { name: 'new', publicKey: nodeKey() }, NOW)],
    ['remove from the middle', removeMember(doc, 'host-1000', NOW).doc],
    ['remove the last', removeMember(doc, `host-2000`, NOW).doc],
    ['remove the first after the admin', removeMember(doc, 'host-2', NOW).doc],
  ];
  for (const [what, next] of edits) {
    const s2 = signRoster(next, mk.privateKey);
    const d = makeDelta(s1, doc.serial, s2);
    t.equal(deltaBaseSerial(d), doc.serial, `${what}: the delta names its base`);
    t.ok(d.length < 1000, `${what}: ${d.length} bytes instead of ${s2.length}`);
    const rebuilt = applyDelta(s1, d, MAX);
    t.ok(rebuilt && Buffer.from(rebuilt).equals(Buffer.from(s2)), `${what}: the exact signed bytes`);
    t.ok(checkRoster(rebuilt!, mk.publicKey, doc.serial).ok, `${what}: and it checks`);
  }
});

t.test('a delta that does not fit its base, or is damaged, gives nothing', async (t) => {
  const { mk, doc } = big(50);
  const s1 = signRoster(doc, mk.privateKey);
  const next = addMember(doc, { name: 'new', publicKey: nodeKey() }, NOW);
  const s2 = signRoster(next, mk.privateKey);
  const d = makeDelta(s1, doc.serial, s2);
  const other = signRoster(addMember(doc, { name: 'other', publicKey: nodeKey() }, NOW), mk.privateKey);
  t.equal(applyDelta(other, d, MAX), null, 'another base (of another length) is refused');
  for (let i = 0; i < 300; i++) {
    const bad = Uint8Array.from(d);
    bad[16 + Math.floor(Math.random() * (bad.length - 16 - 64))] ^= 1 + Math.floor(Math.random() * 255);
    const r = applyDelta(s1, bad, MAX);
    if (r) t.notOk(checkRoster(r, mk.publicKey, doc.serial).ok && !Buffer.from(r).equals(Buffer.from(s2)), 'a damaged delta never yields another valid roster');
  }
  t.equal(applyDelta(s1, d.subarray(0, d.length - 70), MAX), null, 'cut short');
  t.equal(applyDelta(s1, d, 100), null, 'bounded by the roster limit');
  t.equal(applyDelta(s1, new Uint8Array(10), MAX), null, 'not a delta');
});

t.test('roster parts reassemble in order; out of order or oversized is refused', async (t) => {
  const { mk, doc } = big(3000);
  const signed = signRoster(doc, mk.privateKey);
  const frames = rosterParts(FRAME_ROSTER, mk.publicKey, signed, 64 * 1024);
  t.ok(frames.length > 5 && frames.every((f) => f.length <= 64 * 1024), `${frames.length} parts within the frame limit`);
  const parts = frames.map((f) => decodeRelayFrame(f)).map((f) => (f.type === 'roster' ? f : null)!);
  const a = new RosterAssembler(MAX);
  let done: Uint8Array | null = null;
  for (const p of parts) {
    const r = a.add(p.meshKey, p.total, p.offset, p.bytes);
    if (r.kind === 'done') done = r.bytes;
    else t.equal(r.kind, 'more');
  }
  t.ok(done && Buffer.from(done).equals(Buffer.from(signed)), 'the same bytes');
  const b = new RosterAssembler(MAX);
  b.add(parts[0].meshKey, parts[0].total, parts[0].offset, parts[0].bytes);
  t.same(b.add(parts[2].meshKey, parts[2].total, parts[2].offset, parts[2].bytes), { kind: 'refused', reason: 'roster-out-of-order' }, 'a gap');
  t.same(b.add(parts[1].meshKey, parts[1].total, parts[1].offset, parts[1].bytes), { kind: 'refused', reason: 'roster-out-of-order' }, 'nothing in progress after a refusal');
  t.same(new RosterAssembler(1000).add(parts[0].meshKey, parts[0].total, 0, parts[0].bytes), { kind: 'refused', reason: 'roster-oversized' }, 'a total above the limit, before anything is held');
});
