// meshd's own control socket: newline-delimited JSON requests/answers for status and down.
import net from 'node:net';
import { mkdirSync } from 'node:fs';
import { MeshdError } from '../errors.js';
import { listenUnix } from './unix-socket.js';

export const CONTROL_DIR = '/var/run/meshd';
const MAX_REQUEST_BYTES = 64 * 1024;

export type ControlRequest = { cmd: 'status' } | { cmd: 'down' } | { cmd: 'ping'; peer: string } | { cmd: 'netcheck' } | { cmd: 'reload' } | { cmd: 'roster' } | { cmd: 'mesh' };
export type ControlAnswer = { ok: true; result: unknown } | { ok: false; error: string };

export function controlSocketPath(iface: string): string {
  return `${CONTROL_DIR}/${iface}.sock`;
}

export async function startControlServer(
  iface: string,
  handle: (req: ControlRequest) => Promise<unknown> | unknown,
): Promise<net.Server> {
  mkdirSync(CONTROL_DIR, { recursive: true, mode: 0o755 });
  const path = controlSocketPath(iface);
  const server = await listenUnix(path, 0o600, (sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST_BYTES) return sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      void answer(line).then((a) => sock.write(JSON.stringify(a) + '\n'));
    });
  });
  return server;

  async function answer(line: string): Promise<ControlAnswer> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
    } catch {
      return { ok: false, error: 'request is not JSON' };
    }
    if (!['status', 'down', 'ping', 'netcheck', 'reload', 'roster', 'mesh'].includes(req.cmd)) return { ok: false, error: `unknown command ${JSON.stringify((req as { cmd?: unknown }).cmd)}` };
    try {
      return { ok: true, result: await handle(req) };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    }
  }
}

/** Sends one request to a running daemon and returns its result. */
export function controlRequest(iface: string, req: ControlRequest, timeoutMs = 5000): Promise<unknown> {
  const path = controlSocketPath(iface);
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new MeshdError('ETIMEDOUT', `no answer from the meshd daemon for ${iface} within ${timeoutMs} ms`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.destroy();
      const a = JSON.parse(buf.slice(0, nl)) as ControlAnswer;
      if (a.ok) resolve(a.result);
      else reject(new MeshdError('ECONTROL', a.error));
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? 'is meshd running for this interface?' : err.code;
      reject(new MeshdError('ENODAEMON', `cannot reach the meshd daemon for ${iface} at ${path}: ${why}`));
    });
  });
}
