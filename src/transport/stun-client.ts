// STUN (RFC 5389) binding requests sent from the daemon's own UDP socket, so the mapping learned
// is the one peers punch through. Messages are built and parsed with the `stun` package.
import { randomBytes } from 'node:crypto';
import stun from 'stun';
import type { Endpoint } from '../tunnel/endpoint.js';
import { normalizeAddress } from '../tunnel/endpoint.js';

export interface StunResult {
  server: string;
  mapped: Endpoint | null;
  rttMs: number | null;
  error?: string;
}

interface Pending {
  server: string;
  sentMs: number;
  done: (r: StunResult) => void;
  timer: NodeJS.Timeout;
}

export class StunProber {
  private readonly pending = new Map<string, Pending>();

  /** Sends one binding request to `server` via `send`; resolves with the mapped address or a timeout. */
  probe(server: Endpoint, serverName: string, send: (data: Uint8Array, to: Endpoint) => void, timeoutMs: number): Promise<StunResult> {
    const txid = randomBytes(12);
    const msg = stun.createMessage(stun.constants.STUN_BINDING_REQUEST, txid);
    const bytes = stun.encode(msg);
    return new Promise((resolve) => {
      const key = txid.toString('hex');
      const timer = setTimeout(() => {
        this.pending.delete(key);
        resolve({ server: serverName, mapped: null, rttMs: null, error: 'no response' });
      }, timeoutMs);
      this.pending.set(key, { server: serverName, sentMs: Date.now(), done: resolve, timer });
      send(bytes, server);
    });
  }

  /** Handles a datagram classified as STUN; false when it is not an answer to one of ours. */
  onDatagram(b: Uint8Array): boolean {
    let m: ReturnType<typeof stun.decode>;
    try {
      m = stun.decode(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
    } catch {
      return false;
    }
    const p = this.pending.get(m.transactionId.toString('hex'));
    if (!p || m.type !== stun.constants.STUN_BINDING_RESPONSE) return false;
    this.pending.delete(m.transactionId.toString('hex'));
    clearTimeout(p.timer);
    const xor = (m as unknown as { getXorAddress(): { address: string; port: number } | undefined }).getXorAddress?.();
    const plain = (m as unknown as { getAddress(): { address: string; port: number } | undefined }).getAddress?.();
    const a = xor ?? plain;
    p.done(
      a
        ? { server: p.server, mapped: { address: normalizeAddress(a.address), port: a.port }, rttMs: Date.now() - p.sentMs }
        : { server: p.server, mapped: null, rttMs: null, error: 'response without a mapped address' },
    );
    return true;
  }

  cancelAll(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }
}
