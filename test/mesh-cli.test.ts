// meshd mesh init / add / remove / list on files (no daemon, no relay): the admin key 0600, MeshKey
// added without disturbing the config, members allocated and refused by a one-line error with exit 1,
// concurrent edits serialized, and exit 2 when a change could not be handed on.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MESHD_BIN } from './helpers/lab.js';
import { keyPair } from './helpers/keys.js';
import { loadConfig } from '../src/config/config.js';
import { readCachedRoster } from '../src/mesh/admin.js';
import { tempDir } from './helpers/temp-dir.js';

const run = (args: string[]) => spawnSync(process.execPath, [MESHD_BIN, ...args], { encoding: 'utf8' });
const runAsync = (args: string[]) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(process.execPath, [MESHD_BIN, ...args]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d));
    p.stderr.on('data', (d: Buffer) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
const A = keyPair();

function fresh(): string {
  const dir = tempDir('meshd-mesh-');
  const f = join(dir, 'mesh7.conf');
  writeFileSync(f, `# the admin host\n[Interface]\nPrivateKey = ${A.priv}\nAddress = 10.88.0.1/24   # the mesh\n\n# a stock WireGuard peer\n[Peer]\nPublicKey = ${keyPair().pub}\nAllowedIPs = 192.0.2.0/24\n`, { mode: 0o600 });
  return f;
}

t.test('init, add, remove, list; every mistake is one line and exit 1', async (t) => {
  const f = fresh();
  const before = readFileSync(f, 'utf8');
  const init = run(['mesh', 'init', f, '--name', 'Admin-Host', '--json']);
  t.equal(init.status, 0, init.stderr);
  const r = JSON.parse(init.stdout) as { meshKey: string; adminKeyFile: string; serial: number; name: string; addresses: string[] };
  t.same([r.serial, r.name, r.addresses], [1, 'admin-host', ['10.88.0.1/32']], 'serial 1 with this host, its address inside the mesh prefix');
  t.equal(statSync(r.adminKeyFile).mode & 0o777, 0o600, 'admin key 0600');
  t.equal(statSync(`${f}.roster`).mode & 0o777, 0o600, 'roster 0600');
  t.equal(readFileSync(f, 'utf8'), before.replace('Address = 10.88.0.1/24   # the mesh\n', `Address = 10.88.0.1/24   # the mesh\nMeshKey = ${r.meshKey}\n`), 'MeshKey added to [Interface], nothing else touched');
  t.notMatch(init.stdout + init.stderr, new RegExp(readFileSync(r.adminKeyFile, 'utf8').trim().replace(/[+/=]/g, '\\$&')), 'the admin key is not printed');

  const again = run(['mesh', 'init', f]);
  t.same([again.status, again.stderr.split('\n').length], [1, 2], 'a second init: exit 1, one line');
  t.match(again.stderr, /already in a mesh/);

  const b = keyPair();
  const add = run(['mesh', 'add', f, '--name', 'db1', '--public-key', b.pub, '--groups', 'db,Ops', '--json']);
  t.equal(add.status, 2, 'signed, but no daemon and no relay took it: exit 2');
  const added = JSON.parse(add.stdout) as { addresses: string[]; groups: string[]; serial: number; published: { via: string } };
  t.same([added.addresses, added.groups, added.serial, added.published.via], [['10.88.0.2/32'], ['db', 'ops'], 2, 'none'], 'the next free address, groups, serial 2');
  const bad = (args: string[], re: RegExp, what: string) => {
    const x = run(['mesh', ...args]);
    t.equal(x.status, 1, `${what}: exit 1`);
    t.match(x.stderr, re, what);
    t.equal(x.stderr.trim().split('\n').length, 1, `${what}: one line`);
  };
  bad(['add', f, '--name', 'db1', '--public-key', keyPair().pub], /already called "db1"/, 'a duplicate name');
  bad(['add', f, '--name', 'db2', '--public-key', b.pub], /already member "db1"/, 'a duplicate key');
  bad(['add', f, '--name', 'db2', '--public-key', keyPair().pub, '--address', '10.99.0.5'], /outside the mesh's prefixes/, 'an address outside the prefix');
  bad(['add', f, '--name', 'db2', '--public-key', keyPair().pub, '--address', '10.88.0.2'], /is member "db1"'s address/, 'a taken address');
  bad(['add', f, '--name', 'Bad_Name', '--public-key', keyPair().pub], /not a member name/, 'a bad name');
  bad(['add', f, '--name', 'db2', '--public-key', 'nope'], /--public-key: "nope" is not a base64 public key/, 'a bad key');
  bad(['remove', f, 'nobody'], /no member "nobody"/, 'removing a stranger');
  bad(['remove', f, 'admin-host'], /cannot remove itself/, 'removing the admin host');

  // Concurrent edits are serialized: both land, with different addresses.
  const [x, y] = await Promise.all([runAsync(['mesh', 'add', f, '--name', 'x', '--public-key', keyPair().pub, '--json']), runAsync(['mesh', 'add', f, '--name', 'y', '--public-key', keyPair().pub, '--json'])]);
  const ax = (JSON.parse(x.stdout) as { addresses: string[] }).addresses[0];
  const ay = (JSON.parse(y.stdout) as { addresses: string[] }).addresses[0];
  t.not(ax, ay, `two concurrent adds get two addresses (${ax}, ${ay})`);
  const roster = readCachedRoster(loadConfig(f))!;
  t.same([roster.serial, roster.members.map((m) => m.name).sort()], [4, ['admin-host', 'db1', 'x', 'y']], 'both in the roster, serial 4');

  const rm = run(['mesh', 'remove', f, 'db1', '--json']);
  t.equal(rm.status, 2);
  t.equal((JSON.parse(rm.stdout) as { serial: number }).serial, 5);
  const list = run(['mesh', 'list', f, '--json']);
  t.equal(list.status, 0, list.stderr);
  const l = JSON.parse(list.stdout) as { serial: number; running: boolean; members: { name: string; self: boolean; online: null }[] };
  t.same([l.serial, l.running, l.members.map((m) => m.name).sort()], [5, false, ['admin-host', 'x', 'y']], 'list reads the cached roster when no daemon runs');
  t.ok(l.members.find((m) => m.name === 'admin-host')!.self);
  const text = run(['mesh', 'list', f]);
  t.match(text.stdout, /roster serial 5, signed .*, 3 members \(daemon not running: no live state\)/);

  chmodSync(r.adminKeyFile, 0o644);
  bad(['add', f, '--name', 'z', '--public-key', keyPair().pub], /readable by others/, 'an admin key others can read');
  chmodSync(r.adminKeyFile, 0o600);

  const plain = fresh();
  bad(['add', plain, '--name', 'z', '--public-key', keyPair().pub], /no MeshKey in \[Interface\]/, 'a config that is not in a mesh');
  for (const c of [['mesh', '--help'], ['mesh', 'init', '--help'], ['mesh', 'add', '--help'], ['mesh', 'remove', '--help'], ['mesh', 'list', '--help']]) t.equal(run(c).status, 0, `${c.join(' ')} exits 0`);
});

t.test('mesh policy and mesh set: checked at edit time with the rule position, signed into the roster', async (t) => {
  const f = fresh();
  t.equal(run(['mesh', 'init', f, '--name', 'admin']).status, 0);
  t.equal(run(['mesh', 'add', f, '--name', 'db1', '--public-key', keyPair().pub, '--groups', 'db']).status, 2);
  const dir = join(f, '..');
  const file = (name: string, text: string) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const bad = (args: string[], re: RegExp, what: string) => {
    const x = run(['mesh', ...args]);
    t.equal(x.status, 1, `${what}: exit 1`);
    t.match(x.stderr, re, what);
    t.equal(x.stderr.trim().split('\n').length, 1, `${what}: one line`);
  };
  bad(['policy', f, join(dir, 'missing.json')], /missing\.json: no such file/, 'a missing file');
  bad(['policy', f, file('junk.json', '{"rules": [')], /junk\.json: not JSON/, 'not JSON');
  bad(['policy', f, file('shape.json', '{"allow": []}')], /shape\.json: a policy is \{"rules": \[ … \]\}/, 'not the shape');
  bad(['policy', f, file('group.json', '{"rules":[{"from":["*"],"to":["db1"],"ports":["tcp/22"]},{"from":["group:ops"],"to":["db1"],"ports":["tcp/22"]}]}')], /group\.json: rule 2: from "group:ops": no member is in that group/, 'an unknown group, with its position');
  bad(['policy', f, file('port.json', '{"rules":[{"from":["*"],"to":["db1"],"ports":["tcp/22-21"]}]}')], /rule 1: port "tcp\/22-21"/, 'a malformed port');
  bad(['policy', f, file('ok.json', '{"rules":[]}'), '--clear'], /a policy file or --clear, not both/, 'a file and --clear');
  const before = readCachedRoster(loadConfig(f))!.serial;
  t.equal(readCachedRoster(loadConfig(f))!.policy, null, 'no policy yet');

  const set = run(['mesh', 'set', f, 'admin', '--groups', 'ops,Dev', '--json']);
  t.equal(set.status, 2, 'mesh set: signed (no daemon, no relay: exit 2)');
  t.same((JSON.parse(set.stdout) as { groups: string[] }).groups, ['ops', 'dev']);
  bad(['set', f, 'nobody', '--groups', 'x'], /no member "nobody"/, 'mesh set on no member');

  const ok = run(['mesh', 'policy', f, file('ssh.json', '{"rules":[{"from":["group:ops"],"to":["group:db"],"ports":["tcp/22","icmp"]}]}'), '--json']);
  t.equal(ok.status, 2, 'mesh policy: signed (exit 2: not handed on)');
  const r = readCachedRoster(loadConfig(f))!;
  t.equal(r.serial, before + 2, 'the roster moved on by the group change and the policy');
  t.same(r.policy, { rules: [{ from: ['group:ops'], to: ['group:db'], ports: ['tcp/22', 'icmp'] }] }, 'the roster carries the policy, signed');
  t.same(JSON.parse(run(['mesh', 'policy', f]).stdout), r.policy, 'mesh policy CONFIG prints it');

  const rm = run(['mesh', 'set', f, 'admin', '--groups', '']);
  t.match(rm.stderr, /warning: the access policy's rule 1: from "group:ops": no member is in that group/, 'a group change that empties a rule is done, with a warning');
  t.equal(run(['mesh', 'policy', f, '--clear']).status, 2);
  t.equal(readCachedRoster(loadConfig(f))!.policy, null, '--clear removes the rules');
});
