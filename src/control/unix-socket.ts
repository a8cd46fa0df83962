// Unix socket listening that survives a previous daemon's kill -9: a stale socket file
// (nobody answers) is removed; a live one means another daemon owns the name.
import net from 'node:net';
import { existsSync, unlinkSync } from 'node:fs';
import { MeshdError } from '../errors.js';

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

export async function listenUnix(path: string, onConnection: (s: net.Socket) => void): Promise<net.Server> {
  if (await socketInUse(path)) throw new MeshdError('EINUSE', `${path} is in use: is another daemon running for this interface?`);
  if (existsSync(path)) unlinkSync(path);
  const server = net.createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
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
