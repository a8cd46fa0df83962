// The hard side's extra UDP sockets for birthday probing (transport/birthday-probe.ts): opened per
// peer for an attempt, one kept when it meets (it then carries that peer's WireGuard traffic and
// heartbeats), the rest closed at once. On the fast path each is the addon's NativeUdpConn with
// small buffers (hundreds are open during an attempt); the one kept grows full-size buffers on the
// same socket, so the port, the NAT's mapping and whatever the kernel has queued all stay. Through a
// node:dgram socket a path found by probing moved 0.6 Gbit/s, less than the relay (docs/performance.md,
// 2026-12-06 (night)); moving the port from one to a batched socket lost the datagrams that arrived
// during the move (2026-12-07). node:dgram sockets remain where the addon is not used (MESHD_FASTPATH=off)
// or cannot open one.
import dgram from 'node:dgram';
import type { Endpoint } from '../tunnel/endpoint.js';
import { normalizeAddress } from '../tunnel/endpoint.js';
import type { DatagramRun } from '../tunnel/outbox.js';
import { MAX_BIRTHDAY_SOCKETS } from './birthday.js';

export type BirthdayReceive = (msg: Uint8Array, from: Endpoint) => void;

/**
 * A probing socket through the addon (NativeUdpConn opened with SMALL_SIZES): batched sends, and
 * receives (to the daemon's data-socket handlers) tagged with its id.
 */
export interface BatchedSocket {
  readonly port: number;
  /** Whether it has a data socket's buffers. */
  readonly full: boolean;
  queue(data: Uint8Array, to: Endpoint): void;
  queueRun(run: DatagramRun, to: Endpoint): void;
  flush(): void;
  /** Full-size buffers on the same socket; false when it could not (it is closed then). */
  grow(): boolean;
  close(): void;
  readonly stats: { sendErrors: number; sendDropped: number };
}

/** Opens a small batched socket on an ephemeral port whose source endpoints carry `sock: id`; null when it cannot. */
export type BatchedOpen = (id: number) => BatchedSocket | null;

/**
 * At most this many kept sockets grow full-size buffers at once (~6 MiB each); further ones keep
 * their small ones (a datagram per wakeup).
 */
export const MAX_BATCHED_BIRTHDAY_SOCKETS = 8;

/** Batched sockets opened in one turn of the event loop (BirthdaySockets.open). */
export const OPEN_PER_TURN = 32;

interface Sock {
  peerId: string;
  /** One of the two. */
  sock: dgram.Socket | null;
  batched: BatchedSocket | null;
  /** Kept, to grow once this turn's I/O is done. */
  growing: boolean;
}

export class BirthdaySockets {
  private nextId = 1;
  private readonly socks = new Map<number, Sock>();
  private readonly dirty = new Set<BatchedSocket>();
  /** Datagrams that could not be sent from an extra socket (it was closed, or the send failed). */
  private failed = 0;
  /** Kept sockets given full-size buffers, over the daemon's life. */
  grownTotal = 0;

  constructor(
    private readonly onMessage: BirthdayReceive,
    private readonly batchedOpen: BatchedOpen | null = null,
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

  /** Kept sockets with full-size buffers open now. */
  get batched(): number {
    let n = 0;
    for (const s of this.socks.values()) if (s.batched?.full) n++;
    return n;
  }

  /** The local port of socket `id`, if open. */
  port(id: number): number | undefined {
    const s = this.socks.get(id);
    if (s?.batched) return s.batched.port;
    try {
      return s?.sock?.address().port;
    } catch {
      return undefined;
    }
  }

  /**
   * Opens up to `count` sockets for `peerId`; resolves with their ids once bound. Batched sockets open
   * OPEN_PER_TURN at a time, a turn of the event loop between (each takes a few syscalls and
   * allocations: 256 at once would hold up the data path for tens of milliseconds).
   */
  async open(peerId: string, count: number): Promise<number[]> {
    const n = Math.max(0, Math.min(count, MAX_BIRTHDAY_SOCKETS - this.socks.size));
    const pending: Promise<number | null>[] = [];
    for (let i = 0; i < n; i++) {
      if (i > 0 && i % OPEN_PER_TURN === 0 && this.batchedOpen) await new Promise((r) => setImmediate(r));
      pending.push(this.openOne(peerId));
    }
    const bound = await Promise.all(pending);
    return bound.filter((id): id is number => id !== null);
  }

  private openOne(peerId: string): Promise<number | null> {
    const id = this.nextId++;
    const batched = this.batchedOpen?.(id) ?? null;
    if (batched) {
      this.socks.set(id, { peerId, sock: null, batched, growing: false });
      return Promise.resolve(id);
    }
    return this.bindDgram(peerId, id);
  }

  private bindDgram(peerId: string, id: number): Promise<number | null> {
    return new Promise((resolve) => {
      const sock = dgram.createSocket('udp4');
      sock.once('error', () => {
        this.socks.delete(id);
        sock.close();
        resolve(null);
      });
      sock.on('message', (msg, rinfo) => this.onMessage(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), { address: normalizeAddress(rinfo.address), port: rinfo.port, sock: id }));
      sock.bind(0, () => {
        this.socks.set(id, { peerId, sock, batched: null, growing: false });
        resolve(id);
      });
    });
  }

  send(data: Uint8Array, to: Endpoint): void {
    const s = to.sock === undefined ? undefined : this.socks.get(to.sock);
    if (s?.batched) {
      s.batched.queue(data, to);
      this.dirty.add(s.batched);
      return;
    }
    if (!s?.sock) {
      this.failed++;
      return;
    }
    // dgram copies nothing before the send completes: hand it its own copy of a view into a reused buffer.
    s.sock.send(Buffer.from(data), to.port, to.address, (err) => {
      if (err) this.failed++;
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
   * Keeps sockets `keep` of `peerId` and closes its others; a peer down to one batched socket has it
   * grow full-size buffers after this turn's I/O (not from inside its own receive callback).
   */
  keep(peerId: string, keep: readonly number[]): void {
    for (const [id, s] of this.socks) if (s.peerId === peerId && !keep.includes(id)) this.closeOne(id);
    const left = [...this.socks].filter(([, s]) => s.peerId === peerId);
    if (left.length !== 1) return;
    const [id, s] = left[0];
    if (!s.batched || s.batched.full || s.growing) return;
    s.growing = true;
    setImmediate(() => this.grow(id));
  }

  private grow(id: number): void {
    const s = this.socks.get(id);
    if (!s?.growing || !s.batched) return;
    s.growing = false;
    if (this.batched >= MAX_BATCHED_BIRTHDAY_SOCKETS) return;
    this.dirty.delete(s.batched); // grow() sends what is queued first
    if (s.batched.grow()) this.grownTotal++;
    else this.closeOne(id);
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
