// meshd peer add / remove / list on files: formatting kept byte for byte, duplicates refused,
// addresses allocated, concurrent writers serialized, and the file always parses.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MESHD_BIN } from './helpers/lab.js';
import { keyPair } from './helpers/keys.js';
import { parseConfig } from '../src/config/config.js';
import { appendPeer, removePeer } from '../src/config/editor.js';
import { tempDir } from './helpers/temp-dir.js';

const run = (args: string[]) => spawnSync(process.execPath, [MESHD_BIN, ...args], { encoding: 'utf8' });
const A = keyPair();
const B = keyPair();

const original = `# office mesh — edited by hand, keep these notes
[Interface]
PrivateKey = ${A.priv}   # the host key
Address = 10.77.0.1/24, fd77::1/64

ListenPort = 51820

# the database server
[Peer]
Name = db1
PublicKey = ${B.pub}
AllowedIPs = 10.77.0.2/32, fd77::2/128

   # trailing notes, indented
`;

function fresh(): string {
  const dir = tempDir('meshd-peer-');
  const f = join(dir, 'wg7.conf');
  writeFileSync(f, original, { mode: 0o600 });
  return f;
}

t.test('add keeps the file byte for byte outside the new section, and allocates addresses', async (t) => {
  const f = fresh();
  const C = keyPair();
  const r = run(['peer', 'add', f, '--public-key', C.pub, '--name', 'laptop', '--json']);
  t.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  t.same(out.allowedIps, ['10.77.0.3/32', 'fd77::3/128'], 'the next free IPv4 and IPv6 mesh addresses');
  const text = readFileSync(f, 'utf8');
  t.equal(text.slice(0, original.length), original, 'everything before the new section is unchanged');
  t.match(text.slice(original.length), /^\n?\[Peer\]\nName = laptop\nPublicKey = .*\nAllowedIPs = 10\.77\.0\.3\/32, fd77::3\/128\n$/);
  t.equal(statSync(f).mode & 0o777, 0o600, 'mode kept');
  t.equal(parseConfig(text, f).peers.length, 2);

  const rm = run(['peer', 'remove', f, 'laptop']);
  t.equal(rm.status, 0, rm.stderr);
  t.equal(readFileSync(f, 'utf8'), original, 'remove restores the original bytes');
  const rm2 = run(['peer', 'remove', f, B.pub]);
  t.equal(rm2.status, 0, rm2.stderr);
  const left = readFileSync(f, 'utf8');
  t.notMatch(left, /database server|db1/, 'the peer and its leading comment are gone');
  t.match(left, /^# office mesh — edited by hand, keep these notes\n\[Interface\]\nPrivateKey = .*   # the host key\n/, 'the rest is intact');
  t.match(left, /   # trailing notes, indented\n$/, 'trailing notes kept');
});

t.test('duplicates and bad input are refused with one line and exit 1; the file is untouched', async (t) => {
  const f = fresh();
  const cases: [string[], RegExp][] = [
    [['--public-key', B.pub], /a peer with public key .* already exists \(db1\)/],
    [['--public-key', keyPair().pub, '--name', 'db1'], /a peer named db1 already exists/],
    [['--public-key', keyPair().pub, '--allowed-ips', '10.77.0.0/24'], /--allowed-ips 10\.77\.0\.0\/24 overlaps 10\.77\.0\.2\/32 of peer db1/],
    [['--public-key', 'nope'], /--public-key: "nope" is not a base64 public key/],
    [['--public-key', A.pub], /this host's own key/],
    [['--public-key', keyPair().pub, '--endpoint', 'nohost'], /--endpoint: "nohost" is not host:port/],
    [['--public-key', keyPair().pub, '--allowed-ips', '10.1.2.3/40'], /"10\.1\.2\.3\/40" is not an IP prefix/],
  ];
  for (const [args, re] of cases) {
    const r = run(['peer', 'add', f, ...args]);
    t.equal(r.status, 1, `exit 1 for ${args.join(' ')}`);
    t.match(r.stderr, re);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
  t.equal(readFileSync(f, 'utf8'), original, 'file untouched');
  const missing = run(['peer', 'remove', f, 'ghost']);
  t.equal(missing.status, 1);
  t.match(missing.stderr, /no \[Peer\] named or keyed "ghost"/);
  const help = run(['peer', 'add', '--help']);
  t.equal(help.status, 0);
  t.match(help.stdout, /--allowed-ips/);
});

t.test('list shows name, key, addresses and endpoint', async (t) => {
  const f = fresh();
  const r = run(['peer', 'list', f, '--json']);
  t.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  t.equal(j.running, false);
  t.same(j.peers, [{ name: 'db1', publicKey: B.pub, allowedIps: ['10.77.0.2/32', 'fd77::2/128'], endpoint: null, path: null, latestHandshake: null }]);
  t.match(run(['peer', 'list', f]).stdout, /^db1 +\S+ +10\.77\.0\.2\/32,fd77::2\/128/);
});

t.test('concurrent peer add from two processes: every peer lands, the file always parses', async (t) => {
  const f = fresh();
  const N = 8;
  const one = (i: number, who: string) =>
    new Promise<number>((resolve) => {
      const p = spawn(process.execPath, [MESHD_BIN, 'peer', 'add', f, '--public-key', keyPair().pub, '--name', `${who}${i}`], { stdio: 'ignore' });
      p.on('exit', (code) => resolve(code ?? -1));
    });
  const codes = await Promise.all([...Array(N).keys()].flatMap((i) => [one(i, 'x'), one(i, 'y')]));
  t.same(codes, Array(2 * N).fill(0), 'all adds succeeded (serialized by the lock)');
  const cfg = parseConfig(readFileSync(f, 'utf8'), f);
  t.equal(cfg.peers.length, 1 + 2 * N, 'every peer is in the file');
  const ips = cfg.peers.map((p) => p.allowedIps[0].bytes.join('.'));
  t.equal(new Set(ips).size, ips.length, 'no address was handed out twice');
  // Racing on the same name: exactly one wins, the other fails cleanly.
  const race = await Promise.all([0, 1].map(() => new Promise<number>((resolve) => {
    const p = spawn(process.execPath, [MESHD_BIN, 'peer', 'add', f, '--public-key', keyPair().pub, '--name', 'same'], { stdio: 'ignore' });
    p.on('exit', (code) => resolve(code ?? -1));
  })));
  t.same(race.sort(), [0, 1], 'one add of the name "same" wins, the other exits 1');
  t.ok(parseConfig(readFileSync(f, 'utf8'), f), 'and the file parses');
});

t.test('editor: CRLF files and files without a final newline', async (t) => {
  const crlf = original.replace(/\n/g, '\r\n');
  const added = appendPeer(crlf, { publicKey: keyPair().pub, allowedIps: ['10.77.0.9/32'] });
  t.equal(added.slice(0, crlf.length), crlf);
  t.notMatch(added.slice(crlf.length), /[^\r]\n/, 'new lines use CRLF too');
  const noNl = original.trimEnd();
  const added2 = appendPeer(noNl, { publicKey: keyPair().pub, allowedIps: ['10.77.0.9/32'] });
  t.equal(added2.slice(0, noNl.length), noNl);
  t.ok(parseConfig(added2, 'x.conf', 'wg0'));
  t.throws(() => removePeer(added, 'nobody', 'x.conf'), /no \[Peer\] named or keyed "nobody"/);
});

/** Whether this machine lets us mount a small tmpfs (root, and not forbidden by a container). */
function canMountTmpfs(): string | false {
  if (process.getuid?.() !== 0) return 'needs root to mount a small tmpfs';
  const probe = tempDir('meshd-probe-');
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16k', 'tmpfs', probe]).status !== 0) return 'mounting a tmpfs is not permitted here';
  spawnSync('umount', [probe]);
  return false;
}

t.test('a full disk leaves the previous file intact', { skip: canMountTmpfs() }, async (t) => {
  const dir = tempDir('meshd-full-');
  t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir]).status, 0, 'a 64 KiB filesystem');
  t.teardown(() => {
    spawnSync('umount', [dir]);
  });
  const f = join(dir, 'wg7.conf');
  writeFileSync(f, original, { mode: 0o600 });
  const filler = spawnSync('sh', ['-c', `dd if=/dev/zero of=${dir}/filler bs=1k count=1000 2>/dev/null; true`]);
  t.equal(filler.status, 0);
  const r = run(['peer', 'add', f, '--public-key', keyPair().pub, '--name', 'toolate']);
  t.equal(r.status, 2, 'a runtime failure (exit 2)');
  t.match(r.stderr, /wg7\.conf.*ENOSPC.*unchanged/, 'says the disk is full and the file is unchanged');
  t.equal(readFileSync(f, 'utf8'), original, 'the previous file is intact');
  const leftovers = spawnSync('sh', ['-c', `ls -A ${dir} | grep -v -e filler -e wg7.conf || true`], { encoding: 'utf8' }).stdout.trim();
  t.equal(leftovers, '', 'no temporary or lock file left behind');
});
