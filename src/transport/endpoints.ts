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
  /** A fresh socket's verdict on the mapping, for the data socket's mapping `key`. */
  private second: { key: string; varies: boolean } | null = null;

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
    return this.verdict(this.stun);
  }

  /**
   * Whether the NAT seems to hand out public ports in order, counting up: its mapping varies by
   * destination, and the data socket's mappings towards two servers (asked at once, so made one
   * right after the other) lie at most PORTS_IN_ORDER_MAX_GAP ports apart on one address. A NAT that
   * picks at random from all 64,512 ports does that for about one host in 1,000; one that picks
   * from a block of 1,024, one in 16 (both sides would then probe in vain, within the budget).
   */
  portsInOrder(): boolean {
    return this.mappingVariesByDestination() === true && portsInOrder(this.stun);
  }

  /** mappingVaries of a round's results, with the second opinion taken for the same mapping. */
  verdict(results: readonly StunResult[]): boolean | null {
    const v = mappingVaries(results);
    return v === false && this.second !== null && this.second.key === mappingKey(results) && this.second.varies ? true : v;
  }

  /**
   * Whether the data socket's mappings agree and no second opinion (mapping-check.ts) was taken for
   * this mapping yet: a symmetric NAT can give both the same port by chance.
   */
  needsSecondOpinion(): boolean {
    return mappingVaries(this.stun) === false && this.second?.key !== this.mappingKey();
  }

  /** Records a fresh socket's verdict for mapping `key` (mappingKey() when it was asked). */
  noteSecondOpinion(key: string, varies: boolean): void {
    this.second = { key, varies };
  }

  /** The data socket's current public mapping (the first one STUN reported), "" without one. */
  mappingKey(): string {
    return mappingKey(this.stun);
  }

  /** True when the host's interface addresses differ from those of the last STUN round. */
  localAddressesChanged(): boolean {
    return JSON.stringify(localAddresses(this.iface)) !== JSON.stringify(this.local);
  }

  get stunResults(): readonly StunResult[] {
    return this.stun;
  }
}

function mappingKey(results: readonly StunResult[]): string {
  const m = results.find((r) => r.mapped)?.mapped;
  return m ? formatEndpoint(m) : '';
}

/** The largest gap between the data socket's two mappings that still counts as ports handed out in order. */
export const PORTS_IN_ORDER_MAX_GAP = 32;

export function portsInOrder(results: readonly StunResult[]): boolean {
  const mapped = results.filter((r) => r.mapped).map((r) => r.mapped as Endpoint);
  if (mapped.length < 2 || mapped.some((m) => m.address !== mapped[0].address)) return false;
  const gap = Math.abs(mapped[1].port - mapped[0].port);
  return gap >= 1 && gap <= PORTS_IN_ORDER_MAX_GAP;
}

export function mappingVaries(results: readonly StunResult[]): boolean | null {
  const mapped = results.filter((r) => r.mapped).map((r) => r.mapped as Endpoint);
  if (mapped.length < 2) return null;
  return mapped.some((m) => !endpointEqual(m, mapped[0]));
}
