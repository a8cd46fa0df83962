// Serves the UAPI on /var/run/wireguard/IFACE.sock so wg(8) works against meshd.
import net from 'node:net';
import { mkdirSync } from 'node:fs';
import { EPROTO } from './uapi.js';
import { listenUnix } from '../control/unix-socket.js';

export const UAPI_DIR = '/var/run/wireguard';
/**
 * Largest request accepted on one connection before it is cut: wg setconf of one peer with 131,072
 * IPv6 allowed IPs is about 6 MiB (a huge set is 64 KiB per ~500 peers).
 */
export const UAPI_MAX_REQUEST_BYTES = 16 * 1024 * 1024;

export interface UapiHandler {
  get(): string;
  set(lines: string[]): Promise<number>;
}

export function uapiSocketPath(iface: string): string {
  return `${UAPI_DIR}/${iface}.sock`;
}

export async function startUapiServer(iface: string, handler: UapiHandler): Promise<net.Server> {
  mkdirSync(UAPI_DIR, { recursive: true, mode: 0o755 });
  const path = uapiSocketPath(iface);
  return listenUnix(path, 0o600, (sock) => serve(sock, handler));
}

function serve(sock: net.Socket, handler: UapiHandler): void {
  let buf = '';
  /** Where the search for the request's end goes on (a big request arrives in many chunks). */
  let scanned = 0;
  let busy = false;
  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      for (;;) {
        const end = buf.indexOf('\n\n', scanned);
        if (end < 0) {
          scanned = Math.max(0, buf.length - 1);
          break;
        }
        const req = buf.slice(0, end);
        buf = buf.slice(end + 2);
        scanned = 0;
        const [op, ...lines] = req.split('\n');
        if (op === 'get=1' && lines.length === 0) sock.write(handler.get() + 'errno=0\n\n');
        else if (op === 'set=1') sock.write(`errno=${-(await handler.set(lines))}\n\n`);
        else {
          sock.end(`errno=${-EPROTO}\n\n`);
          return;
        }
      }
    } finally {
      busy = false;
    }
  };
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    if (buf.length > UAPI_MAX_REQUEST_BYTES) {
      sock.destroy();
      return;
    }
    void pump();
  });
  sock.on('error', () => sock.destroy());
}
