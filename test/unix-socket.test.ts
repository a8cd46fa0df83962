// The daemon's UAPI and control sockets: made listening and with their mode before anyone can find
// them, a stale file replaced, a live one refused, nothing left behind.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { closeUnix, listenUnix, socketInUse } from '../src/control/unix-socket.js';
import { tempDir } from './helpers/temp-dir.js';

/** Answers a connection by closing it (the checks connect and hang up at once). */
const hangUp = (s: Socket): void => {
  s.on('error', () => s.destroy());
  s.end();
};

/** A socket file bound and never listened on, as a killed daemon (or one mid-start) leaves it. */
function boundNotListening(path: string): void {
  const r = spawnSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path]);
  if (r.status !== 0) throw new Error(`python3: ${r.stderr.toString()}`);
}

t.test('the socket appears listening, with its mode, and is the only file made', async (t) => {
  const dir = tempDir('meshd-sock-');
  const path = join(dir, 'wg9.sock');
  const server = await listenUnix(path, 0o600, hangUp);
  t.teardown(() => closeUnix(server, path));
  t.ok(statSync(path).isSocket(), 'a socket at the path');
  t.equal(statSync(path).mode & 0o777, 0o600, 'mode 0600');
  t.equal(statSync(path).nlink, 1, 'one name: the temporary one is gone');
  t.same(readdirSync(dir), ['wg9.sock'], 'nothing else in the directory');
  t.ok(await socketInUse(path), 'it accepts a connection');
  closeUnix(server, path);
  t.same(readdirSync(dir), [], 'closed: the directory is empty');
});

t.test('a stale socket file is replaced; a live one is refused', async (t) => {
  const dir = tempDir('meshd-sock-');
  const path = join(dir, 'wg9.sock');
  boundNotListening(path);
  t.notOk(await socketInUse(path), 'the stale file refuses connections');
  const server = await listenUnix(path, 0o600, hangUp);
  t.teardown(() => closeUnix(server, path));
  t.ok(await socketInUse(path), 'replaced by a listening socket');
  await t.rejects(listenUnix(path, 0o600, hangUp), /wg9\.sock is in use/, 'a second daemon for the name is refused');
  t.same(readdirSync(dir), ['wg9.sock'], 'and leaves no file of its own');
  t.ok(await socketInUse(path), 'the first one still answers');
});

t.test("a temporary name left by a daemon killed while it started is removed; a live one's is not", async (t) => {
  const dir = tempDir('meshd-sock-');
  const path = join(dir, 'wg9.sock');
  // A pid no process has (above the kernel's pid_max), and this process's own (alive).
  const dead = `wg9.sock.${Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8')) + 1}-0123abcd`;
  const live = `wg9.sock.${process.pid}-89abcdef`;
  boundNotListening(join(dir, dead));
  boundNotListening(join(dir, live));
  writeFileSync(join(dir, 'wg9.sock.notes'), ''); // not a temporary name: left alone
  const server = await listenUnix(path, 0o600, hangUp);
  t.teardown(() => closeUnix(server, path));
  t.same(readdirSync(dir).sort(), [live, 'wg9.sock', 'wg9.sock.notes'].sort(), "the dead daemon's temporary name is gone, the others stay");
});
