// meshd genkey / pubkey / genpsk against wg(8) from wireguard-tools, and file modes.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MESHD_BIN } from './helpers/lab.js';
import { tempDir } from './helpers/temp-dir.js';

const run = (args: string[], input = '') => spawnSync(process.execPath, [MESHD_BIN, ...args], { input, encoding: 'utf8' });
const hasWg = spawnSync('sh', ['-c', 'command -v wg']).status === 0;

t.test('keys are wg-compatible', async (t) => {
  for (let i = 0; i < 2; i++) {
    const priv = run(['genkey']).stdout;
    t.match(priv, /^[A-Za-z0-9+/]{43}=\n$/);
    const ours = run(['pubkey'], priv).stdout;
    if (hasWg) t.equal(ours, spawnSync('wg', ['pubkey'], { input: priv, encoding: 'utf8' }).stdout, 'meshd pubkey == wg pubkey');
    if (hasWg) {
      const theirs = spawnSync('wg', ['genkey'], { encoding: 'utf8' }).stdout;
      t.equal(run(['pubkey'], theirs).stdout, spawnSync('wg', ['pubkey'], { input: theirs, encoding: 'utf8' }).stdout, 'on wg genkey output too');
    }
  }
  t.match(run(['genpsk']).stdout, /^[A-Za-z0-9+/]{43}=\n$/);
  const bad = run(['pubkey'], 'not a key\n');
  t.equal(bad.status, 1);
  t.equal(bad.stderr, 'meshd: pubkey: standard input is not a base64 private key\n');
});

t.test('private key files are 0600', async (t) => {
  const dir = tempDir('meshd-keys-');
  const out = join(dir, 'k');
  t.equal(run(['genkey', '--out', out]).status, 0);
  t.equal(statSync(out).mode & 0o777, 0o600);
  t.match(readFileSync(out, 'utf8'), /^[A-Za-z0-9+/]{43}=\n$/);
  // Redirected stdout: meshd tightens the file it writes the key into.
  const redirected = join(dir, 'r');
  spawnSync('sh', ['-c', `umask 022; "${process.execPath}" "${MESHD_BIN}" genkey > "${redirected}"`]);
  t.equal(statSync(redirected).mode & 0o777, 0o600);
});

t.test('usage errors exit 1 with one line', async (t) => {
  const r = run(['status', '--bogus']);
  t.equal(r.status, 1);
  t.match(r.stderr, /unknown option '--bogus'/);
  const missing = run(['up', '/nonexistent/wg9.conf']);
  t.equal(missing.status, 1);
  t.equal(missing.stderr, 'meshd: /nonexistent/wg9.conf: cannot read: ENOENT\n');
});
