// WireGuard's cross-platform userspace API (https://www.wireguard.com/xplatform/): get=1 and set=1.
// Pure: formats a device's state and applies "set" lines; the server does the socket I/O.
import { clamp, generatePrivateKey, isAllZero, keyId, keyToBase64, type NodePrivateKey, type NodePublicKey } from '../crypto/keys.js';
import { formatCidr, parseCidr } from '../tunnel/cidr.js';
import type { Device } from '../tunnel/device.js';
import { formatEndpoint, parseEndpointLiteral } from '../tunnel/endpoint.js';
import type { Peer } from '../tunnel/peer.js';

export const EINVAL = 22;
export const EPROTO = 71;

const hexKey = (k: Uint8Array): string => Buffer.from(k).toString('hex');

function parseHexKey(v: string): Uint8Array | null {
  if (!/^[0-9a-fA-F]{64}$/.test(v)) return null;
  return new Uint8Array(Buffer.from(v, 'hex'));
}

/** The body of a get=1 answer (without the final errno line). */
export function formatGet(dev: Device, listenPort: number, fwMark = 0): string {
  const lines: string[] = [];
  if (dev.hasKey) lines.push(`private_key=${hexKey(dev.identity.privateKey)}`);
  lines.push(`listen_port=${listenPort}`);
  if (fwMark !== 0) lines.push(`fwmark=${fwMark}`);
  for (const p of dev.peers.values()) {
    lines.push(`public_key=${hexKey(p.publicKey)}`);
    if (!isAllZero(p.presharedKey)) lines.push(`preshared_key=${hexKey(p.presharedKey)}`);
    lines.push('protocol_version=1');
    if (p.endpoint) lines.push(`endpoint=${formatEndpoint(p.endpoint)}`);
    const ms = p.lastHandshakeWallMs;
    lines.push(`last_handshake_time_sec=${Math.floor(ms / 1000)}`);
    lines.push(`last_handshake_time_nsec=${(ms % 1000) * 1_000_000}`);
    lines.push(`tx_bytes=${p.txBytes}`);
    lines.push(`rx_bytes=${p.rxBytes}`);
    lines.push(`persistent_keepalive_interval=${p.persistentKeepaliveSec}`);
    for (const c of dev.allowedIps.prefixesOf(p)) lines.push(`allowed_ip=${formatCidr(c)}`);
  }
  return lines.join('\n') + '\n';
}

export interface SetOutcome {
  errno: number;
  /** Set when listen_port was given: the daemon rebinds. */
  listenPort?: number;
  /** Set when fwmark was given (0 clears it): the daemon marks its socket. */
  fwMark?: number;
  /** Peers whose AllowedIPs changed or that were removed/added: the daemon reconciles routes. */
  routesChanged: boolean;
  /** Keys (base64) of peers that were added / removed, for logs. */
  added: string[];
  removed: string[];
}

/** Applies the lines of a set=1 request (after the "set=1" line, before the blank line). */
export function applySet(dev: Device, lines: string[]): SetOutcome {
  const out: SetOutcome = { errno: 0, routesChanged: false, added: [], removed: [] };
  let peer: Peer | null = null;
  let pendingNew = false; // public_key seen with update_only unknown yet: create lazily
  let peerKey: NodePublicKey | null = null;
  let skipPeer = false;
  const fail = (): SetOutcome => ({ ...out, errno: EINVAL });

  const ensurePeer = (): Peer | null => {
    if (peer || skipPeer) return peer;
    if (pendingNew && peerKey) {
      peer = dev.addPeer({ publicKey: peerKey });
      out.added.push(keyToBase64(peerKey));
      pendingNew = false;
    }
    return peer;
  };

  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq <= 0) return fail();
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    if (peerKey === null) {
      switch (k) {
        case 'private_key': {
          const key = parseHexKey(v);
          if (!key) return fail();
          if (!isAllZero(key)) dev.setPrivateKey(clamp(key) as NodePrivateKey);
          else if (dev.hasKey) dev.clearPrivateKey(generatePrivateKey(dev.rng)); // wireguard-go: the zero key removes it
          continue;
        }
        case 'listen_port': {
          if (!/^\d+$/.test(v) || Number(v) > 65535) return fail();
          out.listenPort = Number(v);
          continue;
        }
        case 'fwmark':
          if (!/^\d{1,10}$/.test(v) || Number(v) > 0xffffffff) return fail();
          out.fwMark = Number(v);
          continue;
        case 'replace_peers':
          if (v !== 'true') return fail();
          for (const p of [...dev.peers.values()]) {
            out.removed.push(keyToBase64(p.publicKey));
            dev.removePeer(p.id);
          }
          out.routesChanged = true;
          continue;
      }
    }
    switch (k) {
      case 'public_key': {
        ensurePeer();
        const key = parseHexKey(v);
        if (!key) return fail();
        peerKey = key as NodePublicKey;
        skipPeer = false;
        if (keyId(key) === keyId(dev.publicKey)) {
          // wg(8): a peer with our own public key is ignored.
          peer = null;
          pendingNew = false;
          skipPeer = true;
          continue;
        }
        peer = dev.peers.get(keyId(key)) ?? null;
        pendingNew = peer === null;
        continue;
      }
      case 'update_only':
        if (v !== 'true' || peerKey === null) return fail();
        if (pendingNew) {
          pendingNew = false;
          skipPeer = true;
        }
        continue;
      case 'remove':
        if (v !== 'true' || peerKey === null) return fail();
        if (peer) {
          dev.removePeer(peer.id);
          out.removed.push(keyToBase64(peer.publicKey));
          out.routesChanged = true;
        }
        peer = null;
        pendingNew = false;
        skipPeer = true;
        continue;
      case 'preshared_key': {
        const key = parseHexKey(v);
        if (!key || peerKey === null) return fail();
        const p = ensurePeer();
        if (p) p.setPresharedKey(isAllZero(key) ? null : key);
        continue;
      }
      case 'endpoint': {
        const e = parseEndpointLiteral(v);
        if (!e || peerKey === null) return fail();
        const p = ensurePeer();
        if (p) dev.setEndpoint(p, e);
        continue;
      }
      case 'persistent_keepalive_interval': {
        if (!/^\d+$/.test(v) || Number(v) > 65535 || peerKey === null) return fail();
        const p = ensurePeer();
        if (p) dev.setPersistentKeepalive(p, Number(v));
        continue;
      }
      case 'replace_allowed_ips': {
        if (v !== 'true' || peerKey === null) return fail();
        const p = ensurePeer();
        if (p) {
          dev.allowedIps.removeValue(p);
          out.routesChanged = true;
        }
        continue;
      }
      case 'allowed_ip': {
        const c = parseCidr(v);
        if (!c || peerKey === null) return fail();
        const p = ensurePeer();
        if (p) {
          dev.allowedIps.insert(c, p);
          out.routesChanged = true;
        }
        continue;
      }
      case 'protocol_version':
        if (v !== '1') return fail();
        continue;
      default:
        return fail();
    }
  }
  ensurePeer();
  if (out.added.length) out.routesChanged = true;
  return out;
}
