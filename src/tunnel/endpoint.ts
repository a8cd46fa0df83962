// A UDP endpoint (IP literal and port), normalised so IPv4-mapped IPv6 reads as IPv4.
import { parseIp } from './cidr.js';

export interface Endpoint {
  readonly address: string;
  readonly port: number;
  /**
   * This host's address the peer's datagram arrived on (IP_PKTINFO), so replies leave from it
   * (WireGuard's sticky source); unset: the kernel picks the source.
   */
  readonly local?: string;
  /**
   * One of the extra sockets birthday probing opened (transport/birthday-sockets.ts): the peer is
   * reached from that socket's port, not the data socket's. Unset: the data socket.
   */
  readonly sock?: number;
  /** Set when the datagram came through a relay: which relay, and the sender key it vouched for. */
  readonly relay?: { readonly url: string; readonly key: Uint8Array };
}

/** The pseudo-endpoint of a packet delivered by relay `url` from public key `key`. */
export function relayEndpoint(url: string, key: Uint8Array): Endpoint {
  return { address: 'relay', port: 0, relay: { url, key } };
}

export function normalizeAddress(a: string): string {
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  return a;
}

export function endpointEqual(a: Endpoint | null, b: Endpoint | null): boolean {
  return a === b || (a !== null && b !== null && a.port === b.port && a.address === b.address && a.sock === b.sock);
}

export function formatEndpoint(e: Endpoint): string {
  if (e.relay) return `relay ${e.relay.url}`;
  return e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`;
}

/** Parses "1.2.3.4:51820" or "[::1]:51820" with an IP literal; null otherwise. */
export function parseEndpointLiteral(s: string): Endpoint | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:\[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535 || !parseIp(m[1])) return null;
  return { address: normalizeAddress(m[1]), port };
}

/** Bytes identifying a source for cookies: the address bytes then the port, big-endian. */
export function endpointBytes(e: Endpoint): Uint8Array {
  if (e.relay) return e.relay.key;
  const ip = parseIp(e.address);
  const a = ip ? ip.bytes : new Uint8Array(0);
  const out = new Uint8Array(a.length + 2);
  out.set(a);
  out[a.length] = e.port >> 8;
  out[a.length + 1] = e.port & 0xff;
  return out;
}
