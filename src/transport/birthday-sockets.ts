// The hard side's extra UDP sockets for birthday probing (transport/birthday-probe.ts): opened per
// peer for an attempt, one kept when it meets (it then carries that peer's WireGuard traffic and
// heartbeats), the rest closed at once. node:dgram sockets on ephemeral IPv4 ports: a symmetric NAT
// is an IPv4 device, and these carry one peer each, so the batched path is not needed here.
import dgram from 'node:dgram';
import type { Endpoint } from '../tunnel/endpoint.js';
import { normalizeAddress } from '../tunnel/endpoint.js';
import { MAX_BIRTHDAY_SOCKETS } from './birthday.js';

export type BirthdayReceive = (msg: Uint8Array, from: Endpoint) => void;

export class BirthdaySockets {
  private nextId = 1;
  private readonly socks = new Map<number, { peerId: string; sock: dgram.Socket }>();
  /** Datagrams that could not be sent from an extra socket (it was closed, or the send failed). */
  sendFailed = 0;

  constructor(private readonly onMessage: BirthdayReceive) {}

  /** Open now, over all peers (never more than MAX_BIRTHDAY_SOCKETS). */
  get size(): number {
    return this.socks.size;
  }

  /** Opens up to `count` sockets for `peerId`; resolves with their ids once bound. */
  async open(peerId: string, count: number): Promise<number[]> {
    const n = Math.max(0, Math.min(count, MAX_BIRTHDAY_SOCKETS - this.socks.size));
    const bound = await Promise.all(Array.from({ length: n }, () => this.bindOne(peerId)));
    return bound.filter((id): id is number => id !== null);
  }

  private bindOne(peerId: string): Promise<number | null> {
    return new Promise((resolve) => {
      const sock = dgram.createSocket('udp4');
      const id = this.nextId++;
      sock.once('error', () => {
        this.socks.delete(id);
        sock.close();
        resolve(null);
      });
      sock.on('message', (msg, rinfo) => this.onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), { address: normalizeAddress(rinfo.address), port: rinfo.port, sock: id }));
      sock.bind(0, () => {
        this.socks.set(id, { peerId, sock });
        resolve(id);
      });
    });
  }

  send(data: Uint8Array, to: Endpoint): void {
    const s = to.sock === undefined ? undefined : this.socks.get(to.sock);
    if (!s) {
      this.sendFailed++;
      return;
    }
    // dgram copies nothing before the send completes: hand it its own copy of a view into a reused buffer.
    s.sock.send(Buffer.from(data), to.port, to.address, (err) => {
      if (err) this.sendFailed++;
    });
  }

  /** Keeps sockets `keep` of `peerId` and closes its others. */
  keep(peerId: string, keep: readonly number[]): void {
    for (const [id, s] of this.socks) if (s.peerId === peerId && !keep.includes(id)) this.closeOne(id);
  }

  close(peerId: string): void {
    for (const [id, s] of this.socks) if (s.peerId === peerId) this.closeOne(id);
  }

  closeAll(): void {
    for (const id of [...this.socks.keys()]) this.closeOne(id);
  }

  private closeOne(id: number): void {
    const s = this.socks.get(id);
    if (!s) return;
    this.socks.delete(id);
    try {
      s.sock.close();
    } catch {
      // already closed
    }
  }
}
