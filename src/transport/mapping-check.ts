// A second opinion on the NAT's mapping behaviour, and a fresh mapping, from a throwaway socket.
//
// The data socket's two STUN mappings tell an endpoint-independent NAT (same public port towards
// both servers) from a symmetric one (a new port per destination). A symmetric NAT that hands out
// ports at random from a block can give both mappings the same port by chance: one host in B behind a
// B-port block (1 in 64 for a small carrier-grade block) would pass for endpoint-independent, say so
// in its call-me-maybe, and neither side would probe (docs/birthday.md). A fresh socket's two
// mappings are a second, independent draw: when they differ, the mapping varies by destination.
// Run only when the data socket's mappings agree, once per mapping.
import { createSocket, type Socket } from 'node:dgram';
import type { Endpoint } from '../tunnel/endpoint.js';
import { mappingVaries } from './endpoints.js';
import { StunProber, type StunResult } from './stun-client.js';

/**
 * One binding request to each server from a new UDP socket on an ephemeral port, closed after;
 * whether that socket's mappings differ (null: fewer than two answers within `timeoutMs`, or the
 * socket could not be opened). Only IPv4 servers: NAT is an IPv4 matter.
 */
export async function mappingVariesFromFreshSocket(servers: readonly { name: string; ep: Endpoint }[], timeoutMs: number, signal?: AbortSignal, open: OpenFreshSocket = openDgramSocket): Promise<boolean | null> {
  const v4 = servers.filter((s) => !s.ep.address.includes(':'));
  if (v4.length < 2) return null;
  const results = await fromFreshSocket(v4, timeoutMs, signal, open);
  return results === null ? null : mappingVaries(results);
}

/**
 * The public endpoint a new UDP socket is mapped to towards `server` (one binding request from an
 * ephemeral port, the socket closed after); null without an answer within `timeoutMs`. Birthday
 * probing's hard side asks as an attempt starts: behind a NAT that hands out ports in order, its
 * probing sockets' ports lie just beside this one (docs/birthday.md).
 */
export async function freshSocketMapping(server: { name: string; ep: Endpoint }, timeoutMs: number, signal?: AbortSignal, open: OpenFreshSocket = openDgramSocket): Promise<Endpoint | null> {
  const results = await fromFreshSocket([server], timeoutMs, signal, open);
  return results?.[0]?.mapped ?? null;
}

/** A throwaway UDP socket on an ephemeral port: datagrams out with `send`, answers to the callback it was opened with. */
export interface FreshSocket {
  send(data: Uint8Array, to: Endpoint): void;
  close(): void;
}
/** Opens a FreshSocket whose datagrams go to `onMessage`; null when it cannot. */
export type OpenFreshSocket = (onMessage: (b: Uint8Array) => void) => Promise<FreshSocket | null>;

/** A node:dgram socket (no FwMark: the daemon opens one through the addon when the config sets one). */
export const openDgramSocket: OpenFreshSocket = async (onMessage) => {
  const sock: Socket = createSocket('udp4');
  sock.on('message', (m) => onMessage(m));
  sock.on('error', () => undefined); // a send that fails is a missing answer
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(0, () => {
        sock.off('error', reject);
        resolve();
      });
    });
  } catch {
    sock.close();
    return null;
  }
  return { send: (data, to) => sock.send(data, to.port, to.address), close: () => sock.close() };
};

/** One binding request to each server from a new socket, closed after; null: no socket, or stopped. */
async function fromFreshSocket(servers: readonly { name: string; ep: Endpoint }[], timeoutMs: number, signal: AbortSignal | undefined, open: OpenFreshSocket): Promise<StunResult[] | null> {
  if (signal?.aborted) return null;
  const prober = new StunProber();
  const sock = await open((m) => void prober.onDatagram(m));
  if (!sock) return null;
  try {
    const send = (data: Uint8Array, to: Endpoint) => sock.send(data, to);
    // The daemon stopping (signal) ends the check at once: the socket closes below.
    const stopped = new Promise<null>((resolve) => signal?.addEventListener('abort', () => resolve(null), { once: true }));
    return await Promise.race([Promise.all(servers.map((s) => prober.probe(s.ep, s.name, send, timeoutMs))), stopped]);
  } finally {
    prober.cancelAll();
    sock.close();
  }
}
