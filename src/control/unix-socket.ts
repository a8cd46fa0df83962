// Unix socket listening that survives a previous daemon's kill -9: a stale socket file
// (nobody answers) is replaced; a live one means another daemon owns the name.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { chmodSync, existsSync, linkSync, readdirSync, unlinkSync } from 'node:fs';
import { MeshdError } from '../errors.js';
import { processAlive } from '../ops/process-alive.js';

export function socketInUse(path: string): Promise<boolean> {
  if (!existsSync(path)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

/**
 * Listens on PATH with the socket file made MODE. The socket is bound under a temporary name and
 * linked into place once it listens, with its mode already set, so whoever finds PATH finds a
 * listener. A socket bound but not yet listening refuses connections, and wg(8) unlinks a socket that
 * refuses it (it takes it for a dead daemon's): a `wg show` from a monitoring job at that instant
 * would leave the daemon running with no UAPI socket. The temporary name does not end in `.sock`,
 * so `wg show interfaces` never lists it.
 */
export async function listenUnix(path: string, mode: number, onConnection: (s: net.Socket) => void): Promise<net.Server> {
  if (await socketInUse(path)) throw new MeshdError('EINUSE', `${path} is in use: is another daemon running for this interface?`);
  removeLeftTemporaries(path);
  const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}`;
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => {
      server.off('error', reject);
      resolve();
    });
  });
  try {
    chmodSync(tmp, mode);
    if (existsSync(path)) unlinkSync(path); // stale: nobody answered on it
    linkSync(tmp, path); // fails if another daemon linked its socket there meanwhile
  } catch (err) {
    closeUnix(server, tmp);
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new MeshdError('EINUSE', `${path} is in use: is another daemon running for this interface?`);
    throw err;
  }
  unlinkSync(tmp);
  return server;
}

/**
 * Removes the temporary names of PATH that a daemon killed while it started left behind (named
 * `PATH.PID-HEX`, whose process is gone).
 */
function removeLeftTemporaries(path: string): void {
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    const m = name.startsWith(prefix) ? /^(\d+)-[0-9a-f]{8}$/.exec(name.slice(prefix.length)) : null;
    if (!m || processAlive(Number(m[1]))) continue;
    try {
      unlinkSync(join(dirname(path), name));
    } catch {
      // gone meanwhile
    }
  }
}

/** Closes a server and removes its socket file. */
export function closeUnix(server: net.Server | null, path: string): void {
  server?.close();
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
