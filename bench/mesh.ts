// Mesh benchmarks (results in bench/results/mesh-*.json, quoted in docs/performance.md):
//   fan-out  — a real meshd-relay with --mesh-key and 1,000 / 10,000 logged-in, subscribed members
//              (one client process): time from a publish to the last member holding the new roster,
//              as a delta (what meshd clients take) and, for 1,000, whole;
//   apply    — one daemon (TUN in a namespace) taking a roster of 1,000 / 10,000 members: time to
//              verify and apply it (peers, AllowedIPs, kernel routes), its RSS after, and the pure
//              check alone;
//   lab      — hosts behind NAT routers and a TLS relay: `meshd mesh remove` to the removed member
//              gone at another host, and `meshd join` to the first ping from a third host.
// BENCH_ONLY=fanout,apply,lab picks parts.
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { generatePrivateKey, keyToBase64, publicKeyOf, type NodePublicKey } from '../src/crypto/keys.js';
import { generateMeshKey, meshKeyToBase64, type MeshPrivateKey } from '../src/crypto/ed25519.js';
import { checkRoster, signRoster, type RosterDoc } from '../src/mesh/roster.js';
import { addMember, newRoster } from '../src/mesh/edit.js';
import { makeDelta } from '../src/mesh/delta.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { controlRequest } from '../src/control/control.js';
import { packageRoot } from '../src/package-root.js';
import { Lab } from '../src/lab/netns-lab.js';
import { sleep, waitFor } from '../src/lab/netns-lab.js';
import { addressIn, hostConfig, joinMesh, meshLab, meshRelay, status } from '../src/lab/mesh-world.js';
import { machine, median, rssMiB, withBenchLab, writeResult } from './common.js';

const ONLY = new Set((process.env.BENCH_ONLY ?? 'fanout,apply,lab').split(','));
const FANOUT_JS = join(packageRoot(), 'dist', 'bench', 'mesh-fanout.js');
const SIZES = [1000, 10_000];
const REPS = Number(process.env.BENCH_REPS ?? 3);
const rng = (n: number) => new Uint8Array(randomBytes(n));

interface Mesh {
  mk: { privateKey: MeshPrivateKey; publicKey: ReturnType<typeof generateMeshKey>['publicKey'] };
  admin: ReturnType<typeof generatePrivateKey>;
  members: ReturnType<typeof generatePrivateKey>[];
  doc: RosterDoc;
}

/** A mesh of `n` members besides the admin host (addresses 100.64.x.y in order). */
function mesh(n: number): Mesh {
  const mk = generateMeshKey(rng);
  const admin = generatePrivateKey(rng);
  let doc = newRoster({ meshKey: mk.publicKey, prefixes: [parseCidr('100.64.0.0/10')!], relays: [], stun: [], first: { name: 'admin', publicKey: publicKeyOf(admin) } }, Date.now());
  const members = Array.from({ length: n }, () => generatePrivateKey(rng));
  const list = [...doc.members];
  members.forEach((k, i) => {
    const a = i + 2;
    list.push({ name: `host-${i + 1}`, publicKey: publicKeyOf(k), addresses: [{ ...parseCidr(`100.64.${(a >> 8) & 255}.${a & 255}/32`)!, bits: 32 }], groups: ['dev'], expiresMs: null, endpoint: null });
  });
  doc = { ...doc, serial: 2, members: list };
  return { mk, admin, members, doc };
}

async function fanout(lab: Lab): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const n of SIZES) {
    for (const deltas of n > 1000 ? [true] : [true, false]) {
      const runs: { lastMs: number; medianMs: number; received: number }[] = [];
      let bytes = { roster: 0, delta: 0 };
      for (let rep = 0; rep < REPS; rep++) {
        const m = mesh(n);
        const s0 = signRoster(m.doc, m.mk.privateKey);
        const next = addMember(m.doc, { name: 'late', publicKey: publicKeyOf(generatePrivateKey(rng)) as NodePublicKey, addresses: [{ ...parseCidr('100.127.0.1/32')!, bits: 32 }] }, Date.now());
        const s1 = signRoster(next, m.mk.privateKey);
        bytes = { roster: s1.length, delta: makeDelta(s0, m.doc.serial, s1).length };
        const state = join(lab.dir, `fan-${n}-${rep}-${deltas}`);
        mkdirSync(state, { recursive: true });
        writeFileSync(join(state, `${Buffer.from(m.mk.publicKey).toString('base64url')}.roster`), s0);
        const keysFile = join(state, 'keys.json');
        writeFileSync(keysFile, JSON.stringify({ meshKey: meshKeyToBase64(m.mk.publicKey), serial: m.doc.serial, admin: keyToBase64(m.admin), members: m.members.map(keyToBase64) }));
        const nextFile = join(state, 'next.roster');
        writeFileSync(nextFile, s1);
        const ns = await lab.ns(`f${n}${rep}${deltas ? 'd' : 'w'}`);
        const relay = await lab.relay(ns, ['--listen', '127.0.0.1:9000', '--no-stun', '--max-clients', '100000', '--mesh-key', meshKeyToBase64(m.mk.publicKey), '--state-dir', state]);
        const r = await lab.exec(ns, process.execPath, ['--max-old-space-size=4096', FANOUT_JS, 'ws://127.0.0.1:9000/', keysFile, nextFile, deltas ? '1' : '0'], 600_000);
        if (r.code !== 0) throw new Error(`fan-out load failed: ${r.stderr}`);
        const res = JSON.parse(r.stdout) as { lastMs: number; medianMs: number; received: number };
        runs.push(res);
        process.stderr.write(`fan-out ${n} members, ${deltas ? 'delta' : 'whole'}: last after ${res.lastMs.toFixed(0)} ms, median ${res.medianMs.toFixed(0)} ms, ${res.received}/${n}; relay RSS ${rssMiB(relay.pid!).toFixed(0)} MiB\n`);
        relay.kill('SIGTERM');
        await sleep(300);
      }
      out.push({ members: n, as: deltas ? 'delta' : 'whole', bytes: deltas ? bytes.delta : bytes.roster, rosterBytes: bytes.roster, lastMs: runs.map((x) => x.lastMs), medianLastMs: median(runs.map((x) => x.lastMs)), received: runs.map((x) => x.received) });
    }
  }
  return out;
}

async function apply(lab: Lab): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const n of SIZES) {
    const checks: number[] = [];
    const applies: number[] = [];
    let rss = 0;
    let routes = 0;
    for (let rep = 0; rep < REPS; rep++) {
      const m = mesh(n);
      const self = m.members[0];
      const small = { ...m.doc, serial: 1, members: m.doc.members.slice(0, 2) };
      const big = signRoster(m.doc, m.mk.privateKey);
      const t0 = performance.now();
      if (!checkRoster(big, m.mk.publicKey, 0).ok) throw new Error('roster does not check');
      checks.push(performance.now() - t0);
      const ns = await lab.ns(`a${n}${rep}`);
      const iface = `${lab.id}a${rep}`;
      const conf = lab.file(`${iface}.conf`, `[Interface]\nPrivateKey = ${keyToBase64(self)}\nAddress = 100.64.0.2/10\nMeshKey = ${meshKeyToBase64(m.mk.publicKey)}\n`);
      writeFileSync(`${conf}.roster`, signRoster(small, m.mk.privateKey));
      const d = await lab.meshd(ns, conf, iface);
      await sleep(500);
      writeFileSync(`${conf}.roster`, big);
      const t1 = performance.now();
      const r = (await controlRequest(iface, { cmd: 'roster' }, 60_000)) as { ok: boolean };
      const ms = performance.now() - t1;
      if (!r.ok) throw new Error(`daemon refused the roster: ${JSON.stringify(r)}`);
      applies.push(ms);
      await sleep(1000);
      rss = rssMiB(d.pid!);
      const st = (await controlRequest(iface, { cmd: 'status' }, 60_000)) as { peers: unknown[] };
      routes = (await lab.exec(ns, 'ip', ['route', 'show', 'dev', iface])).stdout.trim().split('\n').length;
      process.stderr.write(`apply ${n} members: check ${checks[checks.length - 1].toFixed(0)} ms, verify+apply in the daemon ${ms.toFixed(0)} ms, ${st.peers.length} peers, ${routes} routes, RSS ${rss.toFixed(0)} MiB\n`);
      d.kill('SIGTERM');
      await sleep(500);
    }
    out.push({ members: n, checkMs: median(checks), applyMs: applies, medianApplyMs: median(applies), rssMiB: rss, routes });
  }
  return out;
}

async function labTimes(): Promise<unknown> {
  const removes: number[] = [];
  const joins: { joinMs: number; upMs: number; firstPingMs: number; totalMs: number }[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    const teardowns: (() => unknown)[] = [];
    const lab = new Lab({ teardown: (fn) => teardowns.push(fn) });
    const m = await meshLab(lab, ['eim', 'eim', 'eim']);
    const [h1, h2, h3] = m.hosts;
    const adminFile = hostConfig(m, h1, [0]);
    const init = await lab.cli(['mesh', 'init', adminFile, '--name', 'admin', '--json']);
    const meshKey = (JSON.parse(init.stdout) as { meshKey: string }).meshKey;
    const relay = await meshRelay(m, 0, meshKey);
    const daemons = [await lab.meshd(h1.ns, adminFile, h1.iface)];
    const bob = await joinMesh(m, h2, (await lab.cli(['invite', adminFile, '--name', 'bob'])).stdout.trim());
    daemons.push(await lab.meshd(h2.ns, bob.file, h2.iface));
    const line = (await lab.cli(['invite', adminFile, '--name', 'carol'])).stdout.trim();
    // Join: the redeem starts, carol's daemon comes up, bob's first ping gets through.
    const t0 = performance.now();
    const carol = await joinMesh(m, h3, line);
    const t1 = performance.now();
    daemons.push(await lab.meshd(h3.ns, carol.file, h3.iface));
    const t2 = performance.now();
    const carolAddr = addressIn(carol.file);
    const pinged = await waitFor(async () => (await lab.exec(h2.ns, 'ping', ['-c', '1', '-W', '0.2', carolAddr])).code === 0, 20_000, 10);
    const t3 = performance.now();
    if (!pinged) throw new Error('bob never reached carol');
    joins.push({ joinMs: t1 - t0, upMs: t2 - t1, firstPingMs: t3 - t2, totalMs: t3 - t0 });
    // Remove: from starting `meshd mesh remove` to bob holding no peer for carol (her packets refused).
    const carolKey = (await status(h3)).publicKey;
    const r0 = performance.now();
    const rm = lab.cli(['mesh', 'remove', adminFile, 'carol']);
    const gone = await waitFor(async () => !(await status(h2)).peers.some((p) => p.publicKey === carolKey), 20_000, 10);
    const r1 = performance.now();
    await rm;
    if (!gone) throw new Error('bob kept the removed member');
    removes.push(r1 - r0);
    process.stderr.write(`lab: join → first ping ${(t3 - t0).toFixed(0)} ms (join ${(t1 - t0).toFixed(0)}, daemon up ${(t2 - t1).toFixed(0)}, first ping ${(t3 - t2).toFixed(0)}); mesh remove → refused at another host ${(r1 - r0).toFixed(0)} ms\n`);
    for (const d of [...daemons, relay]) d.kill('SIGTERM');
    for (const f of teardowns) await f();
  }
  return { joins, medianJoinToFirstPingMs: median(joins.map((j) => j.totalMs)), medianFirstPingAfterUpMs: median(joins.map((j) => j.firstPingMs)), removeToRefusedMs: removes, medianRemoveToRefusedMs: median(removes) };
}

async function main(): Promise<void> {
  const result: Record<string, unknown> = { date: new Date().toISOString(), machine: machine(), settings: { reps: REPS, sizes: SIZES } };
  await withBenchLab(['nft', 'openssl', 'conntrack', 'curl', 'ping'], async (lab) => {
    if (ONLY.has('fanout')) result.fanout = await fanout(lab);
    if (ONLY.has('apply')) result.apply = await apply(lab);
    if (ONLY.has('lab')) result.lab = await labTimes();
  });
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  process.stderr.write(`wrote ${writeResult('mesh', result as { date: string })}\n`);
}

void main();
