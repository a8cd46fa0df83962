// meshd-relay with --mesh-key, in process on loopback: it admits only the members of the newest
// roster it holds (an enrollment key only toward its inviter), takes a newer roster from any member,
// pushes it (as a delta to those who hold the previous one), closes a removed member, and refuses
// floods and garbage by reason while other clients go on.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import pino from 'pino';
import { RelayServer, DEFAULT_LIMITS } from '../relay/server.js';
import { MeshDirectory } from '../relay/mesh.js';
import { RelayClient } from '../src/transport/relay-client.js';
import { generatePrivateKey, keyId, publicKeyOf } from '../src/crypto/keys.js';
import { generateMeshKey } from '../src/crypto/ed25519.js';
import { checkRoster, signRoster, type RosterDoc } from '../src/mesh/roster.js';
import { addMember, addPending, newRoster, removeMember } from '../src/mesh/edit.js';
import { applyDelta } from '../src/mesh/delta.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { waitFor } from './helpers/lab.js';
import { tempDir } from './helpers/temp-dir.js';

const rng = (n: number) => new Uint8Array(randomBytes(n));
const log = pino({ level: 'silent' });
const id = () => {
  const privateKey = generatePrivateKey(rng);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
};

t.test('a mesh relay: admission, publish, push, removal, abuse', async (t) => {
  const mk = generateMeshKey(rng);
  const admin = id();
  const bob = id();
  const carol = id();
  const stranger = id();
  const enroll = id();
  let doc: RosterDoc = newRoster({ meshKey: mk.publicKey, prefixes: [parseCidr('100.64.0.0/10')!], relays: [], stun: [], first: { name: 'admin', publicKey: admin.publicKey } }, Date.now());
  doc = addMember(doc, { name: 'bob', publicKey: bob.publicKey }, Date.now());
  doc = addMember(doc, { name: 'carol', publicKey: carol.publicKey }, Date.now());
  const state = tempDir('relay-state-');
  const dir = new MeshDirectory([mk.publicKey], state);
  dir.load(() => {});
  const server = new RelayServer({ privateKey: generatePrivateKey(rng), listen: [{ host: '127.0.0.1', port: 0 }], limits: { ...DEFAULT_LIMITS, publishBurst: 3, publishPerSecond: 0.001 }, allowKeys: () => null, mesh: dir, log });
  const [port] = await server.start();
  t.teardown(() => server.stop());
  const url = `ws://127.0.0.1:${port}/`;
  type Seen = { packets: string[]; rosters: number[]; deltas: number; held: number[]; errors: string[] };
  const clients: RelayClient[] = [];
  t.teardown(() => clients.forEach((c) => c.stop()));
  const mkClient = (who: ReturnType<typeof id>, deltas = true) => {
    const seen: Seen = { packets: [], rosters: [], deltas: 0, held: [], errors: [] };
    let base: Uint8Array | null = null;
    const c = new RelayClient(url, () => who, undefined, {
      onPacket: (_src, p) => seen.packets.push(Buffer.from(p).toString()),
      onRoster: (_k, signed) => {
        const r = checkRoster(signed, mk.publicKey, 0);
        if (r.ok) {
          base = signed;
          seen.rosters.push(r.roster.serial);
        }
      },
      ...(deltas
        ? {
            onRosterDelta: (_k: Uint8Array, d: Uint8Array) => {
              const next = base ? applyDelta(base, d, 8 << 20) : null;
              const r = next ? checkRoster(next, mk.publicKey, 0) : null;
              if (r?.ok) {
                base = next;
                seen.deltas++;
                seen.rosters.push(r.roster.serial);
              }
            },
          }
        : {}),
      onRosterHeld: (_k, s) => seen.held.push(s),
      onStateChange: (rc) => {
        if (rc.connected) rc.subscribe(mk.publicKey, 0);
        else if (rc.lastError) seen.errors.push(rc.lastError);
      },
    }, log);
    clients.push(c);
    c.start();
    return { c, seen };
  };

  // No roster yet: anyone may log in to publish (bootstrap), and forward nothing.
  const a = mkClient(admin);
  t.ok(await waitFor(() => a.c.connected && a.seen.held.length > 0, 5000), 'the admin host logs in before the relay has a roster');
  t.same(a.seen.held, [0], 'and hears the relay holds none');
  t.ok(a.c.publish(mk.publicKey, signRoster(doc, mk.privateKey)));
  t.ok(await waitFor(() => a.seen.held.includes(doc.serial), 3000), 'the relay took the first roster');
  t.same(readdirSync(state).length, 1, 'and stored it in its state dir');

  const b = mkClient(bob, false);
  const c = mkClient(carol);
  t.ok(await waitFor(() => b.seen.rosters.length > 0 && c.seen.rosters.length > 0, 5000), 'members log in and get the roster on subscribe');
  const s = mkClient(stranger);
  t.ok(await waitFor(() => s.seen.errors.some((e) => e.includes('4008')), 5000), `a stranger is refused: ${s.seen.errors[0]}`);
  s.c.stop();

  // An enrollment key (pending) reaches its inviter only.
  doc = addPending(doc, { key: enroll.publicKey, name: 'dave', expiresMs: Date.now() + 60_000, inviter: admin.publicKey }, Date.now());
  a.c.publish(mk.publicKey, signRoster(doc, mk.privateKey));
  t.ok(await waitFor(() => c.seen.rosters.includes(doc.serial) && b.seen.rosters.includes(doc.serial), 3000), 'a newer roster is pushed to every subscriber');
  t.ok(c.seen.deltas >= 1, 'as a delta to a client that takes them');
  t.equal(b.seen.deltas, 0, 'whole to one that does not');
  const e = mkClient(enroll);
  t.ok(await waitFor(() => e.c.connected, 5000), 'the enrollment key logs in');
  e.c.send(admin.publicKey, Buffer.from('redeem'));
  e.c.send(bob.publicKey, Buffer.from('sneak'));
  t.ok(await waitFor(() => a.seen.packets.includes('redeem'), 2000), 'and reaches its inviter');
  await new Promise((r) => setTimeout(r, 200));
  t.notOk(b.seen.packets.includes('sneak'), 'but no one else');

  // Abuse: garbage and a flood of publishes from one member; the others go on.
  const before = b.seen.packets.length;
  for (let i = 0; i < 6; i++) c.c.publish(mk.publicKey, rng(1000 + i));
  await new Promise((r) => setTimeout(r, 300));
  const metrics = await server.metrics.registry.getSingleMetricAsString('meshd_relay_rosters_refused_total');
  t.match(metrics, /reason="roster-malformed"\} 3/, 'garbage is refused as malformed');
  t.match(metrics, /reason="roster-rate-limited"\} 3/, 'and beyond the burst, rate limited');
  t.equal(server.assemblingBytes, 0, 'no assembly budget is held once the publishes are done');
  a.c.send(bob.publicKey, Buffer.from('still here'));
  t.ok(await waitFor(() => b.seen.packets.length > before, 2000), 'other clients are not disturbed');

  // Removal: the removed member's connection is closed and its login refused.
  doc = removeMember(doc, 'bob', Date.now()).doc;
  a.c.publish(mk.publicKey, signRoster(doc, mk.privateKey));
  t.ok(await waitFor(() => b.seen.errors.some((x) => x.includes('4008')), 3000), `the removed member is closed: ${b.seen.errors.join('; ')}`);
  t.ok(await waitFor(() => b.seen.errors.filter((x) => x.includes('4008')).length >= 2, 5000), 'and refused when it comes back');
  t.ok(c.seen.rosters.includes(doc.serial), 'the others have the new roster');

  // A restarted relay serves the stored roster.
  const dir2 = new MeshDirectory([mk.publicKey], state);
  dir2.load(() => {});
  t.equal(dir2.serial(mk.publicKey), doc.serial, 'the state dir keeps the newest roster');
  t.equal(dir2.admission(keyId(bob.publicKey), Date.now()), null, 'and its admissions');
});
