// Two sans-IO devices wired together by hand: the test decides when bytes cross.
import { randomBytes } from 'node:crypto';
import { generatePrivateKey, type NodePrivateKey } from '../../src/crypto/keys.js';
import { nodeCryptoAead } from '../../src/crypto/transport-aead.js';
import { Device, type DeviceOptions } from '../../src/tunnel/device.js';
import { parseCidr } from '../../src/tunnel/cidr.js';
import type { Endpoint } from '../../src/tunnel/endpoint.js';
import type { Datagram } from '../../src/tunnel/outbox.js';
import type { Peer } from '../../src/tunnel/peer.js';
import { FakeClock } from './fake-clock.js';

export const rng = (n: number): Uint8Array => new Uint8Array(randomBytes(n));

export const EP_A: Endpoint = { address: '192.0.2.1', port: 51820 };
export const EP_B: Endpoint = { address: '192.0.2.2', port: 51821 };

export interface Pair {
  clock: FakeClock;
  a: Device;
  b: Device;
  peerOfA: Peer; // B as seen by A
  peerOfB: Peer; // A as seen by B
  /** Datagrams that left A (toward B) / B (toward A) and have not been delivered yet. */
  fromA: Datagram[];
  fromB: Datagram[];
  /** Packets each device wrote to its TUN. */
  tunA: Uint8Array[];
  tunB: Uint8Array[];
}

export function makePair(opts: Partial<DeviceOptions> & { psk?: Uint8Array; keepaliveA?: number } = {}): Pair {
  const clock = new FakeClock();
  const keyA: NodePrivateKey = generatePrivateKey(rng);
  const keyB: NodePrivateKey = generatePrivateKey(rng);
  const base = { clock, rng, aead: nodeCryptoAead, mtu: 1420, ...opts };
  const a = new Device({ ...base, privateKey: keyA });
  const b = new Device({ ...base, privateKey: keyB });
  const peerOfA = a.addPeer(
    { publicKey: b.publicKey, endpoint: EP_B, presharedKey: opts.psk, persistentKeepaliveSec: opts.keepaliveA ?? 0 },
    [parseCidr('10.0.0.2/32')!, parseCidr('fd00::2/128')!],
  );
  const peerOfB = b.addPeer({ publicKey: a.publicKey, endpoint: null, presharedKey: opts.psk }, [
    parseCidr('10.0.0.1/32')!,
    parseCidr('fd00::1/128')!,
  ]);
  return { clock, a, b, peerOfA, peerOfB, fromA: [], fromB: [], tunA: [], tunB: [] };
}

/** Moves what each device queued into the pair's in-flight lists. */
export function collect(p: Pair): void {
  for (const d of p.a.out.net) p.fromA.push(d);
  for (const d of p.b.out.net) p.fromB.push(d);
  for (const t of p.a.out.tun) p.tunA.push(t);
  for (const t of p.b.out.tun) p.tunB.push(t);
  p.a.out.clear();
  p.b.out.clear();
}

/** Delivers everything in flight, both ways, until nothing moves. */
export function pump(p: Pair, maxRounds = 20): void {
  collect(p);
  for (let i = 0; i < maxRounds && (p.fromA.length || p.fromB.length); i++) {
    const toB = p.fromA.splice(0);
    const toA = p.fromB.splice(0);
    for (const d of toB) p.b.outside(d.data, EP_A);
    for (const d of toA) p.a.outside(d.data, EP_B);
    collect(p);
  }
}
