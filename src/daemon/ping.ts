// meshd ping: find a peer by what an operator types, and one disco ping round over its paths.
import { keyId, keyToBase64, parsePublicKey } from '../crypto/keys.js';
import { MeshdError } from '../errors.js';
import { parseIp } from '../tunnel/cidr.js';
import type { Device } from '../tunnel/device.js';
import { formatEndpoint } from '../tunnel/endpoint.js';
import type { Peer } from '../tunnel/peer.js';
import type { Discovery, PongResult } from '../transport/discovery.js';

export interface PongReply {
  via: string;
  direct: boolean;
  rttMs: number;
}

/** Finds a peer by name, mesh IP or public key. */
export function findPeer(dev: Device, q: string): Peer {
  for (const p of dev.peers.values()) if (p.name === q) return p;
  const ip = parseIp(q);
  if (ip) {
    const p = dev.allowedIps.lookup(ip.version, ip.bytes, 0);
    if (p) return p;
  }
  try {
    const p = dev.peers.get(keyId(parsePublicKey(q)));
    if (p) return p;
  } catch {
    // not a key
  }
  throw new MeshdError('ENOPEER', `no peer "${q}" (give a name, a mesh IP or a public key)`);
}

/** Pings every current path at once (`flush` sends them); resolves with the first pong, or none. */
export function pingRound(dev: Device, discovery: Discovery, q: string, flush: () => void): Promise<{ peer: string; replies: PongReply[] }> {
  const peer = findPeer(dev, q);
  const label = peer.name ?? keyToBase64(peer.publicKey);
  return new Promise((resolve, reject) => {
    let answered = 0;
    let done = false;
    const expected = discovery.pingNow(peer, (r: PongResult | null) => {
      answered++;
      if (done) return;
      if (r) {
        done = true;
        resolve({ peer: label, replies: [{ via: r.via ? formatEndpoint(r.via) : `relay ${r.relay}`, direct: r.via !== null, rttMs: r.rttMs }] });
      } else if (answered === expected) {
        done = true;
        resolve({ peer: label, replies: [] });
      }
    });
    flush();
    if (expected === 0) reject(new MeshdError('ENOPATH', `no path to ${label}: no endpoint known and no relay connected`));
  });
}
