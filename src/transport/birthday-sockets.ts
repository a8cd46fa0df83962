// The hard side's extra UDP sockets for birthday probing (transport/birthday-probe.ts): opened per
// peer for an attempt, one kept when it meets (it then carries that peer's WireGuard traffic and
// heartbeats), the rest closed at once. Probing uses node:dgram sockets on ephemeral IPv4 ports (a
// symmetric NAT is an IPv4 device; hundreds of them, each cheap). Once a peer is down to the one
// socket that met, its port moves to a batched socket (`batched`, the addon's NativeUdpConn on the
// fast path): through a dgram socket a path found by probing moved 0.6 Gbit/s, less than the relay
// (docs/performance.md, 2026-12-06 (night)). The NAT's mapping is the port's, so it survives the move.
import dgram from 'node:dgram';
import type { Endpoint } from '../tunnel/endpoint.js';
import { normalizeAddress } from '../tunnel/endpoint.js';
import type { DatagramRun } from '../tunnel/outbox.js';
import { MAX_BIRTHDAY_SOCKETS } from './birthday.js';

export type BirthdayReceive = (msg: Uint8Array, from: Endpoint) => void;

/** What a kept socket becomes (NativeUdpConn): batched sends, and receives tagged with the id. */
export interface BatchedSocket {
  queue(data: Uint8Array, to: Endpoint): void;
  queueRun(run: DatagramRun, to: Endpoint): void;
  flush(): void;
  close(): void;
  readonly stats: { sendErrors: number; sendDropped: number };
}

/** Binds a batched socket on `port` whose source endpoints carry `sock: id`; null when it cannot. */
export type BatchedBind = (port: number, id: number) => BatchedSocket | null;

/**
 * At most this many kept sockets are batched at once (each holds ~6 MiB of buffers); further ones
 * stay on node:dgram.
 */
export const MAX_BATCHED_BIRTHDAY_SOCKETS = 8;

interface Sock {
  peerId: string;
  sock: dgram.Socket | null;
  batched: BatchedSocket | null;
  /** dgram sends not yet done (dgram sends on a later tick: closing before would lose them). */
  pending: number;
  /** Its port is to move to a batched socket once `pending` is 0. */
  moving: boolean;
}

export class BirthdaySockets {
  private nextId = 1;
  private readonly socks = new Map<number, Sock>();
  private readonly dirty = new Set<BatchedSocket>();
  /** Datagrams that could not be sent from an extra socket (it was closed, or the send failed). */
  private failed = 0;
  /** Kept sockets whose port moved to a batched socket, over the daemon's life. */
  batchedOpened = 0;

  constructor(
    private readonly onMessage: BirthdayReceive,
    private readonly batchedBind: BatchedBind | null = null,
  ) {}

  /** Open now, over all peers (never more than MAX_BIRTHDAY_SOCKETS). */
  get size(): number {
    return this.socks.size;
  }

  get sendFailed(): number {
    let n = this.failed;
    for (const s of this.socks.values()) if (s.batched) n += s.batched.stats.sendErrors + s.batched.stats.sendDropped;
    return n;
  }

  /** Batched sockets open now. */
  get batched(): number {
    let n = 0;
    for (const s of this.socks.values()) if (s.batched) n++;
    return n;
  }

  /** Opens up to `count` sockets for `peerId`; resolves with their ids once bound. */
  async open(peerId: string, count: number): Promise<number[]> {
    const n = Math.max(0, Math.min(count, MAX_BIRTHDAY_SOCKETS - this.socks.size));
    const bound = await Promise.all(Array.from({ length: n }, () => this.bindOne(peerId)));
    return bound.filter((id): id is number => id !== null);
  }

  private bindOne(peerId: string, id = this.nextId++, port = 0): Promise<number | null> {
    return new Promise((resolve) => {
      const sock = dgram.createSocket('udp4');
      sock.once('error', () => {
        this.socks.delete(id);
        sock.close();
        resolve(null);
      });
      sock.on('message', (msg, rinfo) => this.onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), { address: normalizeAddress(rinfo.address), port: rinfo.port, sock: id }));
      sock.bind(port, () => {
        this.socks.set(id, { peerId, sock, batched: null, pending: 0, moving: false });
        resolve(id);
      });
    });
  }

  send(data: Uint8Array, to: Endpoint): void {
    const s = to.sock === undefined ? undefined : this.socks.get(to.sock);
    if (!s) {
      this.failed++;
      return;
    }
    if (s.batched) {
      s.batched.queue(data, to);
      this.dirty.add(s.batched);
      return;
    }
    if (!s.sock) {
      this.failed++;
      return;
    }
    // dgram copies nothing before the send completes: hand it its own copy of a view into a reused buffer.
    s.pending++;
    s.sock.send(Buffer.from(data), to.port, to.address, (err) => {
      s.pending--;
      if (err) this.failed++;
      if (s.moving && s.pending === 0) this.moveSoon(to.sock!);
    });
  }

  /**
   * Queues a run where it lies (until flush) when `to`'s socket is batched; false when it is not
   * (send the datagrams one by one then).
   */
  queueRun(run: DatagramRun, to: Endpoint): boolean {
    const s = to.sock === undefined ? undefined : this.socks.get(to.sock);
    if (!s?.batched) return false;
    s.batched.queueRun(run, to);
    this.dirty.add(s.batched);
    return true;
  }

  /** Sends what batched sockets have queued (the daemon's flush, with the data socket's). */
  flush(): void {
    if (this.dirty.size === 0) return;
    for (const b of this.dirty) b.flush();
    this.dirty.clear();
  }

  /**
   * Keeps sockets `keep` of `peerId` and closes its others; a peer down to one gets it batched, once
   * what it has been given to send has left (a turn of the event loop later, at the earliest).
   */
  keep(peerId: string, keep: readonly number[]): void {
    for (const [id, s] of this.socks) if (s.peerId === peerId && !keep.includes(id)) this.closeOne(id);
    const left = [...this.socks].filter(([, s]) => s.peerId === peerId);
    if (left.length !== 1) return;
    const [id, s] = left[0];
    if (!this.batchedBind || s.batched || !s.sock || s.moving) return;
    s.moving = true;
    if (s.pending === 0) this.moveSoon(id);
  }

  /** After this turn's I/O: what arrived has been read, what was sent has left. */
  private moveSoon(id: number): void {
    setImmediate(() => {
      const s = this.socks.get(id);
      if (s?.moving && s.pending === 0) this.batch(id, s);
    });
  }

  /** Moves socket `id`'s port from node:dgram to a batched socket (same port: the NAT's mapping stays). */
  private batch(id: number, s: Sock): void {
    s.moving = false;
    if (!this.batchedBind || s.batched || !s.sock || this.batched >= MAX_BATCHED_BIRTHDAY_SOCKETS) return;
    let port: number;
    try {
      port = s.sock.address().port;
      s.sock.close();
    } catch {
      return;
    }
    s.sock = null;
    const b = this.batchedBind(port, id);
    if (b) {
      s.batched = b;
      this.batchedOpened++;
      return;
    }
    // The batched socket could not bind: back on node:dgram, same port and id.
    this.socks.delete(id);
    void this.bindOne(s.peerId, id, port);
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
    if (s.batched) {
      this.failed += s.batched.stats.sendErrors + s.batched.stats.sendDropped;
      this.dirty.delete(s.batched);
      s.batched.close();
    }
    try {
      s.sock?.close();
    } catch {
      // already closed
    }
  }
}
