// The roster's access policy (DESIGN.md §10), enforced in each receiving host's kernel: an nftables
// table per mesh interface, replaced when the roster changes, its refusals counted in status;
// connections a new policy forbids are cut; the table goes at stop and after kill -9 at the next
// start. Real daemons behind NAT routers, a real relay, real TCP.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Lab, labUnavailable, waitFor } from '../helpers/lab.js';
import { packageRoot } from '../../src/package-root.js';
import { policyTableName } from '../../src/mesh/policy.js';
import { adminUp, allReach, inviteAndJoin, meshLab, status, type Member, type MeshLab } from '../helpers/mesh-lab.js';

const TCP_PROBE = join(packageRoot(), 'dist', 'test', 'helpers', 'tcp-probe.js');
const why = labUnavailable(['ping', 'nft', 'conntrack', 'openssl', 'curl']);

async function connect(m: MeshLab, from: Member, to: Member, port: number, ms = 3000): Promise<string> {
  return (await m.lab.exec(from.h.ns, process.execPath, [TCP_PROBE, 'connect', to.addr, String(port), String(ms)], ms + 5000)).stdout.trim();
}

async function ping(m: MeshLab, from: Member, to: Member): Promise<{ ok: boolean; out: string }> {
  const r = await m.lab.exec(from.h.ns, 'ping', ['-c', '2', '-i', '0.3', '-W', '1', to.addr]);
  return { ok: r.code === 0, out: r.stdout };
}

async function tableIn(m: MeshLab, x: Member): Promise<string | null> {
  const r = await m.lab.exec(x.h.ns, 'nft', ['list', 'table', 'inet', policyTableName(x.h.iface)]);
  return r.code === 0 ? r.stdout : null;
}

function policyFile(m: MeshLab, name: string, rules: unknown[]): string {
  const f = join(m.lab.dir, name);
  writeFileSync(f, JSON.stringify({ rules }, null, 2));
  return f;
}

async function setPolicy(m: MeshLab, admin: Member, file: string | null): Promise<number> {
  const r = await m.lab.cli(['mesh', 'policy', admin.file, ...(file ? [file] : ['--clear']), '--json']);
  if (r.code !== 0) throw new Error(`mesh policy: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { serial: number }).serial;
}

/** Every host runs roster `serial` or later (with its policy applied). */
async function everywhere(members: Member[], serial: number, ms: number): Promise<boolean> {
  return waitFor(async () => (await Promise.all(members.map((x) => status(x.h)))).every((s) => (s.mesh?.serial ?? 0) >= serial), ms);
}

if (why) t.plan(0, why);
else {
  t.test('ops may reach tcp/22 on db and nothing else; a policy change cuts what it forbids; the table never outlives the daemon', async (t) => {
    const lab = new Lab(t);
    const m = await meshLab(lab, ['eim', 'eim', 'eim']);
    const { admin } = await adminUp(m, t);
    const set = await lab.cli(['mesh', 'set', admin.file, 'admin', '--groups', 'ops']);
    t.equal(set.code, 0, `mesh set admin --groups ops: ${set.stderr}`);
    const bob = await inviteAndJoin(m, admin, m.hosts[1], 'bob', t, 'db');
    const carol = await inviteAndJoin(m, admin, m.hosts[2], 'carol', t, 'web');
    const all = [admin, bob, carol];
    await allReach(m, all, t, 15_000, 'no policy');

    for (const x of [bob, admin]) {
      const srv = lab.spawn(x.h.ns, process.execPath, [TCP_PROBE, 'serve', '22', '23']);
      t.ok(await waitFor(() => srv.log.join('').includes('listening'), 5000), `${x.h.name}: TCP servers on 22 and 23`);
    }
    t.equal(await connect(m, carol, bob, 23), 'ok', 'no policy: carol reaches bob on tcp/23');
    for (const x of all) t.equal(await tableIn(m, x), null, `no policy: no table on ${x.h.name}`);

    // Refused at edit time, with the rule's position.
    const bad = await lab.cli(['mesh', 'policy', admin.file, policyFile(m, 'bad.json', [{ from: ['*'], to: ['*'], ports: ['icmp'] }, { from: ['group:ops'], to: ['group:nope'], ports: ['tcp/22'] }])]);
    t.not(bad.code, 0, 'a rule naming an unknown group is refused');
    t.match(bad.stderr, /^meshd: .*bad\.json: rule 2: to "group:nope": no member is in that group\n$/, `one line naming the rule (${bad.stderr.trim()})`);
    const badPort = await lab.cli(['mesh', 'policy', admin.file, policyFile(m, 'badport.json', [{ from: ['*'], to: ['bob'], ports: ['tcp/99999'] }])]);
    t.match(badPort.stderr, /rule 1: port "tcp\/99999"/, 'and a malformed port');

    const serial = await setPolicy(m, admin, policyFile(m, 'ssh.json', [{ from: ['group:ops'], to: ['group:db'], ports: ['tcp/22'] }]));
    const applied = Date.now();
    t.ok(await everywhere(all, serial, 10_000), `every host runs the policy's roster (${Date.now() - applied} ms)`);
    t.ok(await waitFor(async () => (await status(bob.h)).mesh?.policy.table !== null, 10_000), 'bob installed the table');

    t.equal(await connect(m, admin, bob, 22), 'ok', 'ops → db tcp/22: connected, and the reply came back');
    const refusedAtOnce = Date.now();
    t.match(await connect(m, carol, bob, 22), /^fail (EHOSTUNREACH|EACCES|EPERM|ECONNREFUSED)$/, 'carol (not ops) → bob tcp/22: refused');
    t.ok(Date.now() - refusedAtOnce < 2500, 'at once, not by a timeout');
    t.match(await connect(m, admin, bob, 23), /^fail /, 'ops → db tcp/23: refused');
    t.match(await connect(m, bob, admin, 22), /^fail /, 'db → ops tcp/22: refused (the rule goes one way)');
    for (const x of [admin, carol]) {
      const p = await ping(m, x, bob);
      t.notOk(p.ok, `ICMP ${x.h.name} → bob: refused`);
    }
    t.ok((await ping(m, carol, admin)).ok === false, 'ICMP carol → admin: refused (no rule admits it)');
    const cs = (await status(carol.h)).mesh!.policy;
    t.ok(cs.refused.send.packets >= 2, `carol counted what it was not allowed to send (${cs.refused.send.packets})`);
    const human = await lab.cli(['status', carol.h.iface]);
    t.match(human.stdout, /access policy: 1 rules, nftables table inet meshd_\S+\n\s+refused: \d+ arriving \(no rule\), [1-9]\d* not allowed to send/, 'and meshd status says so');

    // A member that does not enforce the policy itself (its table deleted) is refused by the receiver.
    const del = await lab.exec(carol.h.ns, 'nft', ['delete', 'table', 'inet', policyTableName(carol.h.iface)]);
    t.equal(del.code, 0, 'carol stops enforcing (its table deleted by hand)');
    const before = (await status(bob.h)).mesh!.policy.refused.default.packets;
    t.equal(await connect(m, carol, bob, 22, 2000), 'fail timeout', 'carol → bob tcp/22 without carol\'s table: dropped at bob');
    t.notOk((await ping(m, carol, bob)).ok, 'and ICMP');
    const bs = (await status(bob.h)).mesh!.policy;
    t.ok(bs.refused.default.packets >= before + 3, `bob counted the drops (${before} → ${bs.refused.default.packets})`);
    t.ok((bs.accepted['1']?.packets ?? 0) >= 1, `and what rule 1 admitted (${bs.accepted['1']?.packets})`);

    // A policy change reaches every host within 10 s, without a restart, and cuts what it forbids.
    const pids = all.map((x) => x.proc.pid);
    const hold = lab.spawn(admin.h.ns, process.execPath, [TCP_PROBE, 'hold', bob.addr, '22']);
    t.ok(await waitFor(() => hold.log.join('').includes('echo 5'), 5000), 'an ssh-like connection admin → bob:22 is open and answered');
    const serial2 = await setPolicy(m, admin, policyFile(m, 'moved.json', [{ from: ['group:ops'], to: ['group:db'], ports: ['tcp/23'] }, { from: ['*'], to: ['group:web'], ports: ['icmp'] }]));
    const changed = Date.now();
    t.ok(await everywhere(all, serial2, 10_000), `the new policy's roster is on every host (${Date.now() - changed} ms)`);
    t.ok(await waitFor(async () => (await Promise.all(all.map((x) => status(x.h)))).every((s) => s.mesh?.policy.rules === 2 && s.mesh.policy.table !== null), 10_000), `and every host enforces its 2 rules (${Date.now() - changed} ms)`);
    t.ok(await waitFor(() => /cut /.test(hold.log.join('')), 10_000), `the established connection the new policy forbids is cut (${Date.now() - changed} ms: ${/cut (\S+)/.exec(hold.log.join(''))?.[1]})`);
    t.ok(await waitFor(async () => (await connect(m, admin, bob, 23)) === 'ok', 10_000), 'ops → db tcp/23 now works');
    t.match(await connect(m, admin, bob, 22), /^fail /, 'and tcp/22 does not');
    t.ok((await ping(m, bob, carol)).ok, 'ICMP bob → carol (web) works: "*" includes everyone');
    t.notOk((await ping(m, carol, bob)).ok, 'ICMP carol → bob does not');
    t.ok((await status(bob.h)).mesh!.policy.cut >= 1, 'bob counted the cut connection');
    t.ok(await tableIn(m, carol), 'carol enforces again (the new roster reinstalled its table)');
    t.same(all.map((x) => x.proc.pid), pids, 'no daemon was restarted');

    // No policy: everything flows again, and no table is left.
    const serial3 = await setPolicy(m, admin, null);
    t.ok(await everywhere(all, serial3, 10_000), 'the cleared policy is on every host');
    t.ok(await waitFor(async () => (await Promise.all(all.map((x) => tableIn(m, x)))).every((x) => x === null), 10_000), 'no host has a table');
    await allReach(m, all, t, 10_000, 'policy cleared');
    t.equal(await connect(m, carol, bob, 22), 'ok', 'carol reaches bob on tcp/22 again');

    // The table never outlives its daemon: meshd down removes it; after kill -9 the next start does.
    const serial4 = await setPolicy(m, admin, policyFile(m, 'again.json', [{ from: ['group:ops'], to: ['group:db'], ports: ['tcp/22'] }]));
    t.ok(await everywhere(all, serial4, 10_000), 'a policy again');
    t.ok(await waitFor(async () => (await tableIn(m, bob)) !== null && (await tableIn(m, carol)) !== null, 10_000), 'bob and carol have tables');
    const down = await lab.cli(['down', bob.h.iface]);
    t.equal(down.code, 0, down.stderr);
    t.ok(await waitFor(() => bob.proc.exitCode !== null, 10_000), 'bob stopped');
    t.equal(await tableIn(m, bob), null, 'meshd down removed bob\'s table');
    carol.proc.kill('SIGKILL');
    t.ok(await waitFor(() => carol.proc.signalCode !== null, 5000), 'carol killed with SIGKILL');
    t.ok(await tableIn(m, carol), 'its table is left behind');
    const mark = await lab.exec(carol.h.ns, 'nft', ['add', 'set', 'inet', policyTableName(carol.h.iface), 'left_behind', '{ type ipv4_addr; }']);
    t.equal(mark.code, 0, 'marked');
    const again = await lab.meshd(carol.h.ns, carol.file, carol.h.iface);
    t.ok(await waitFor(() => again.log.join('').includes('removed a stale access-policy table'), 5000), 'the next start removes the stale table');
    t.ok(await waitFor(async () => (await tableIn(m, carol)) !== null, 10_000), 'and installs the roster\'s policy afresh');
    t.notMatch((await tableIn(m, carol)) ?? '', /left_behind/, 'nothing of the old table is left');
    again.kill('SIGTERM');
    t.ok(await waitFor(() => again.exitCode !== null, 10_000), 'carol stopped (SIGTERM)');
    t.equal(await tableIn(m, carol), null, 'SIGTERM removed its table too');
  });
}
