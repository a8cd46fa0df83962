// This host's candidate endpoints: its interface addresses with the listen port, and the
// public mappings STUN servers report for the daemon's own UDP socket.
import { networkInterfaces } from 'node:os';
import type { Endpoint } from '../tunnel/endpoint.js';
import { endpointEqual, formatEndpoint, normalizeAddress } from '../tunnel/endpoint.js';
import type { StunResult } from './stun-client.js';

export interface OwnEndpoint {
  endpoint: string;
  source: string;
}

/** Interface addresses usable as candidates (no loopback, link-local, or the tunnel's own). */
export function localAddresses(excludeIface: string): string[] {
  const out: string[] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (name === excludeIface || !addrs) continue;
    for (const a of addrs) {
      if (a.internal) continue;
      if (a.family === 'IPv6' && (a.address.startsWith('fe80:') || a.scopeid)) continue;
      out.push(normalizeAddress(a.address));
    }
  }
  return out;
}

export class OwnEndpoints {
  private stun: StunResult[] = [];
  private local: string[] = [];

  constructor(
    private readonly iface: string,
    private readonly port: () => number,
  ) {}

  /** Records a round of STUN results; returns true when the candidate set changed. */
  update(results: StunResult[]): boolean {
    const before = JSON.stringify(this.candidates().map(formatEndpoint));
    this.stun = results;
    this.local = localAddresses(this.iface);
    return JSON.stringify(this.candidates().map(formatEndpoint)) !== before;
  }

  candidates(): Endpoint[] {
    const out: Endpoint[] = [];
    const add = (e: Endpoint) => {
      if (!out.some((o) => endpointEqual(o, e))) out.push(e);
    };
    for (const r of this.stun) if (r.mapped) add(r.mapped);
    for (const a of this.local) add({ address: a, port: this.port() });
    return out;
  }

  list(): OwnEndpoint[] {
    const out: OwnEndpoint[] = [];
    for (const r of this.stun) if (r.mapped) out.push({ endpoint: formatEndpoint(r.mapped), source: `stun ${r.server}` });
    for (const a of this.local) out.push({ endpoint: formatEndpoint({ address: a, port: this.port() }), source: 'local' });
    return out;
  }

  /**
   * Whether the NAT gives a different public port (or address) per destination: known only when
   * two STUN servers with different addresses answered.
   */
  mappingVariesByDestination(): boolean | null {
    return mappingVaries(this.stun);
  }

  /** True when the host's interface addresses differ from those of the last STUN round. */
  localAddressesChanged(): boolean {
    return JSON.stringify(localAddresses(this.iface)) !== JSON.stringify(this.local);
  }

  get stunResults(): readonly StunResult[] {
    return this.stun;
  }
}

export function mappingVaries(results: readonly StunResult[]): boolean | null {
  const mapped = results.filter((r) => r.mapped).map((r) => r.mapped as Endpoint);
  if (mapped.length < 2) return null;
  return mapped.some((m) => !endpointEqual(m, mapped[0]));
}
