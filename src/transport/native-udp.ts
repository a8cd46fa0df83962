// NativeUdpConn: the data-plane socket through the addon. Receives up to UDP_RX_SLOTS datagrams per
// wakeup (recvmmsg; with UDP GRO one slot may hold several datagrams of one size) into one reused
// buffer; sends what a flush queued with one sendmmsg, runs of equal-size datagrams to one address
// as single UDP GSO sends. Sealed runs from the TUN batch are sent from where they lie (queueRun);
// other datagrams are copied into the send buffer. No allocation per datagram on either path.
import { clearArray } from '../tunnel/clear-array.js';
import { constants } from 'node:os';
import { loadNative, type NativeAddon, type ReaderHandle } from '../tun/native.js';
import { formatIpAddr, parseIp } from '../tunnel/cidr.js';
import type { Endpoint } from '../tunnel/endpoint.js';
import type { DatagramRun } from '../tunnel/outbox.js';
import { bindError, UDP_BUFFER_BYTES, type PacketConn, type PacketHandlers } from './udp.js';

export const UDP_RX_SLOTS = 64;
export const UDP_RX_SLOT_BYTES = 65_536;
/** The most datagrams the kernel coalesces into one GRO receive (UDP_GRO_CNT_MAX is 64). */
const UDP_GRO_MAX_SEGMENTS = 64;
export const UDP_TX_MAX = 1024;
export const UDP_TX_BYTES = 2 * 1024 * 1024;

/** How much one socket reads per wakeup and queues per flush. */
export interface UdpSizes {
  /** Receive slots (one datagram, or one GRO run, each): UDP_RX_SLOT_BYTES apiece. */
  rxSlots: number;
  /** Datagrams and bytes one flush can hold. */
  txMax: number;
  txBytes: number;
}

/** A data socket's: ~6 MiB of buffers. */
export const FULL_SIZES: UdpSizes = { rxSlots: UDP_RX_SLOTS, txMax: UDP_TX_MAX, txBytes: UDP_TX_BYTES };
/**
 * A socket that carries little until it is chosen (birthday probing opens hundreds): one receive
 * slot, shared by every such socket (see smallRx), and a 4 KiB send queue; a datagram larger than
 * that is sent on its own from where it lies. `grow` gives it FULL_SIZES on the same socket.
 */
export const SMALL_SIZES: UdpSizes = { rxSlots: 1, txMax: 16, txBytes: 4096 };

/** What a reader receives into: slots of UDP_RX_SLOT_BYTES, and the batch as one list for onMessages. */
interface RxArrays {
  buf: Buffer;
  lengths: Int32Array;
  gso: Int32Array;
  addrs: Buffer;
  offsets: Int32Array;
  sizes: Int32Array;
}

function rxArrays(slots: number): RxArrays {
  const entries = slots * UDP_GRO_MAX_SEGMENTS;
  return {
    buf: Buffer.allocUnsafeSlow(slots * UDP_RX_SLOT_BYTES),
    lengths: new Int32Array(slots),
    gso: new Int32Array(slots),
    addrs: Buffer.alloc(slots * ADDR_LEN),
    offsets: new Int32Array(entries),
    sizes: new Int32Array(entries),
  };
}

/**
 * The receive arrays every socket with SMALL_SIZES' one slot shares: a reader's batch is handed over
 * and handled (valid until onBatchEnd returns, PacketHandlers) before any reader reads again, all on
 * this thread. Hundreds of probing sockets then cost no 64 KiB each.
 */
let smallRx: RxArrays | null = null;
/** Remote address (16), port (2), local address (16; zero: none): native/src/udp.h. */
const ADDR_LEN = 34;
const REMOTE_LEN = 18;
/** MESHD_STICKY_SOURCE=off: replies leave from whatever source the kernel picks (the pre-sticky behaviour, for comparison). */
const STICKY = !/^(off|0|false|no)$/i.test(process.env.MESHD_STICKY_SOURCE ?? '');
const SOURCE_CACHE_MAX = 4096;

export interface UdpStats {
  /** Datagrams the kernel refused (no route...) or that a full socket buffer made us drop. */
  sendErrors: number;
  sendDropped: number;
  /** Datagrams longer than a receive slot. */
  truncated: number;
  /** Sends whose sticky local address the kernel refused (it was removed): sent again without it. */
  sourceRefused: number;
}

export class NativeUdpConn implements PacketConn {
  readonly kind: string;
  private closed = false;
  private reader: ReaderHandle | null = null;
  private gso = true;
  private handlers: PacketHandlers | null = null;
  // Send queue: datagrams back to back in txBuf, their places and 18-byte addresses (sized by
  // `sizes`; replaced, never resized, by grow()).
  // (Set by setSizes, from the constructor.)
  private txMax!: number;
  private txBytes!: number;
  private txBuf!: Buffer;
  private txOffsets!: Int32Array;
  private txLengths!: Int32Array;
  private txAddrs!: Uint8Array;
  /** Per datagram: 0 = copied into txBuf, 1 = where it lies in `external` (queueRun: no copy). */
  private txWhich!: Uint8Array;
  private external: Uint8Array | null = null;
  private readonly txResult = new Int32Array(3);
  /**
   * The addon's sender over these arrays (native/src/bound.h: bound once, not passed per send), and
   * the external buffer it has bound (the TUN reader's, in a daemon: bound once too).
   */
  private sender = -1;
  private senderExternal: Uint8Array | null = null;
  private txCount = 0;
  private txUsed = 0;
  private readonly addrOf = new WeakMap<Endpoint, Uint8Array>();
  private readonly sources = new Map<string, Endpoint>();
  readonly stats: UdpStats = { sendErrors: 0, sendDropped: 0, truncated: 0, sourceRefused: 0 };
  fwMark = 0;

  private constructor(
    private readonly addon: NativeAddon,
    private readonly fd: number,
    readonly port: number,
    private readonly dualStack: boolean,
    gro: boolean,
    /** Set as `sock` on every source Endpoint (a birthday socket's id: replies leave from it). */
    private readonly tag: number | undefined,
    private sizes: UdpSizes,
  ) {
    this.kind = `native (sendmmsg, UDP GSO${gro ? ', UDP GRO' : ''})`;
    this.setSizes(sizes);
  }

  /** New send arrays for `sizes` (the receive side's come with startReading). */
  private setSizes(sizes: UdpSizes): void {
    this.sizes = sizes;
    this.txMax = sizes.txMax;
    this.txBytes = sizes.txBytes;
    this.txBuf = Buffer.allocUnsafe(sizes.txBytes);
    this.txOffsets = new Int32Array(sizes.txMax);
    this.txLengths = new Int32Array(sizes.txMax);
    this.txAddrs = new Uint8Array(sizes.txMax * ADDR_LEN);
    this.txWhich = new Uint8Array(sizes.txMax);
  }

  /** Whether it reads and queues as a data socket does (FULL_SIZES). */
  get full(): boolean {
    return this.sizes.rxSlots >= FULL_SIZES.rxSlots && this.sizes.txMax >= FULL_SIZES.txMax && this.sizes.txBytes >= FULL_SIZES.txBytes;
  }

  /**
   * Binds `port` (0 = any) on all addresses, dual-stack if the host has IPv6, and starts receiving.
   * `fwMark` (0: none) marks every packet it sends, for policy routing (wg-quick's FwMark). `tag`
   * goes into every source Endpoint as its `sock` (BirthdaySockets). `sizes`: its buffers
   * (SMALL_SIZES for a socket that may never carry much; grow() later).
   */
  static bind(port: number, h: PacketHandlers, fwMark = 0, tag?: number, sizes: UdpSizes = FULL_SIZES): NativeUdpConn {
    const addon = loadNative();
    const r = addon.udpOpen(port, UDP_BUFFER_BYTES, fwMark);
    if (r.fd < 0) throw bindError(port, errnoName(r.code, r.error));
    const conn = new NativeUdpConn(addon, r.fd, r.port, r.dualStack, r.gro, tag, sizes);
    const err = conn.bindSender();
    if (err !== null) {
      addon.closeFd(r.fd);
      throw bindError(port, err);
    }
    conn.fwMark = fwMark;
    conn.handlers = h;
    conn.startReading(h);
    return conn;
  }

  /** Binds the send arrays to a new addon sender; an error's text, or null. */
  private bindSender(): string | null {
    this.sender = this.addon.udpSenderCreate(this.fd, this.txBuf, this.txWhich, this.txOffsets, this.txLengths, this.txAddrs, this.txResult);
    this.senderExternal = null;
    return this.sender < 0 ? `cannot set up sending: ${errnoName(-this.sender, String(this.sender))}` : null;
  }

  /**
   * Gives the socket FULL_SIZES buffers: the same socket and port (nothing queued in the kernel is
   * lost, and a NAT's mapping stays), what was queued to send is sent first. Call it outside this
   * socket's own receive callback. False when closed, already full, or the addon refused.
   */
  grow(): boolean {
    if (this.closed || this.full || !this.handlers) return false;
    this.flush();
    const oldSender = this.sender;
    this.setSizes(FULL_SIZES);
    const refused = this.bindSender() !== null;
    this.addon.udpSenderClose(oldSender);
    if (refused) {
      this.close();
      return false;
    }
    // The old reader's poll handle is stopped at once (the fd stays open); the new one polls the same fd.
    this.reader?.stop();
    this.reader = null;
    try {
      this.startReading(this.handlers);
    } catch {
      this.close();
      return false;
    }
    return true;
  }

  private startReading(h: PacketHandlers): void {
    const slots = this.sizes.rxSlots;
    const rx = slots === SMALL_SIZES.rxSlots ? (smallRx ??= rxArrays(slots)) : rxArrays(slots);
    const { buf, lengths, gso, addrs, offsets, sizes } = rx;
    const ab = buf.buffer;
    // The source of the last datagram (its address bytes kept across wakeups): a peer's next
    // datagram, in this batch or the next, reuses its Endpoint without a cache lookup.
    let last: Endpoint | null = null;
    const lastAddr = new Uint8Array(ADDR_LEN);
    // The batch as one list (GRO slots split into their datagrams), for onMessages.
    const maxEntries = offsets.length;
    const from: Endpoint[] = [];
    const base = buf.byteOffset;
    const whole = new Uint8Array(ab, base, slots * UDP_RX_SLOT_BYTES);
    const onMessages = h.onMessages?.bind(h);
    const deliver = (n: number): number => {
      if (onMessages && n > 0) onMessages(whole, offsets, sizes, from, n);
      clearArray(from);
      return 0;
    };
    this.reader = new this.addon.UdpReader(this.fd, buf, UDP_RX_SLOT_BYTES, lengths, gso, addrs, (count) => {
      if (count < 0) return; // a socket error (ICMP reported late): nothing to do but read on
      let n = 0;
      for (let i = 0; i < count; i++) {
        const len = lengths[i];
        if (len < 0) {
          this.stats.truncated++;
          continue;
        }
        const a = i * ADDR_LEN;
        if (last === null || !sameAddr(addrs, a, lastAddr)) {
          last = this.source(addrs, a);
          for (let k = 0; k < ADDR_LEN; k++) lastAddr[k] = addrs[a + k];
        }
        const off = i * UDP_RX_SLOT_BYTES;
        const seg = gso[i];
        if (onMessages) {
          if (seg > 0 && seg < len) {
            for (let s = 0; s < len; s += seg) {
              if (n === maxEntries) n = deliver(n);
              offsets[n] = off + s;
              sizes[n] = Math.min(seg, len - s);
              from[n++] = last;
            }
          } else {
            if (n === maxEntries) n = deliver(n);
            offsets[n] = off;
            sizes[n] = len;
            from[n++] = last;
          }
        } else if (seg > 0 && seg < len) {
          // Plain Uint8Array views: cheaper to make than Buffer views, one per datagram.
          for (let s = 0; s < len; s += seg) h.onMessage(new Uint8Array(ab, base + off + s, Math.min(seg, len - s)), last);
        } else {
          h.onMessage(new Uint8Array(ab, base + off, len), last);
        }
      }
      deliver(n);
      h.onBatchEnd();
    });
    const r = this.reader.start();
    if (r !== 0) {
      this.close();
      throw bindError(this.port, `uv error ${r}`);
    }
  }

  /**
   * The Endpoint for the address bytes of a datagram, one object per (source, local address) pair
   * (bounded cache). Its `local` is where the datagram arrived: replies to it leave from there.
   */
  private source(addrs: Buffer, at: number): Endpoint {
    const key = addrs.toString('latin1', at, at + ADDR_LEN);
    let ep = this.sources.get(key);
    if (!ep) {
      const address = addrString(addrs, at);
      let hasLocal = false;
      for (let k = REMOTE_LEN; k < ADDR_LEN && !hasLocal; k++) hasLocal = addrs[at + k] !== 0;
      const port = (addrs[at + 16] << 8) | addrs[at + 17];
      const local = hasLocal ? addrString(addrs, at + REMOTE_LEN) : undefined;
      if (this.tag !== undefined) ep = local !== undefined ? { address, port, local, sock: this.tag } : { address, port, sock: this.tag };
      else ep = local !== undefined ? { address, port, local } : { address, port };
      if (this.sources.size >= SOURCE_CACHE_MAX) this.sources.clear();
      this.sources.set(key, ep);
      const raw = new Uint8Array(addrs.subarray(at, at + ADDR_LEN));
      if (!STICKY) raw.fill(0, REMOTE_LEN);
      this.addrOf.set(ep, raw);
    }
    return ep;
  }

  private addressBytes(to: Endpoint): Uint8Array | null {
    let a = this.addrOf.get(to);
    if (a) return a;
    const ip = parseIp(to.address);
    if (!ip) return null;
    a = new Uint8Array(ADDR_LEN);
    putAddr(a, 0, ip);
    a[16] = to.port >> 8;
    a[17] = to.port & 0xff;
    const local = to.local ? parseIp(to.local) : null;
    if (local) putAddr(a, REMOTE_LEN, local);
    this.addrOf.set(to, a);
    return a;
  }

  send(data: Uint8Array, to: Endpoint): void {
    this.queue(data, to);
    this.flush();
  }

  queue(data: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    const addr = this.addressBytes(to);
    if (!addr) {
      this.stats.sendErrors++;
      return;
    }
    if (data.length > this.txBytes) {
      // Larger than the send buffer (a small socket's): on its own, from where it lies, now.
      this.flush();
      this.external = data;
      this.txCount = 1;
      this.txWhich[0] = 1;
      this.txOffsets[0] = 0;
      this.txLengths[0] = data.length;
      this.txAddrs.set(addr, 0);
      this.flush();
      return;
    }
    if (this.txCount === this.txMax || this.txUsed + data.length > this.txBytes) this.flush();
    const i = this.txCount++;
    this.txBuf.set(data, this.txUsed);
    this.txWhich[i] = 0;
    this.txOffsets[i] = this.txUsed;
    this.txLengths[i] = data.length;
    this.txAddrs.set(addr, i * ADDR_LEN);
    this.txUsed += data.length;
  }

  /** Queues a run's datagrams where they lie (no copy): its buffer must stay as it is until flush(). */
  queueRun(run: DatagramRun, to: Endpoint): void {
    if (this.closed) return;
    const addr = this.addressBytes(to);
    if (!addr) {
      this.stats.sendErrors += run.count;
      return;
    }
    if (this.external !== null && this.external !== run.buf) this.flush();
    this.external = run.buf;
    const { offsets, lengths } = run;
    for (let k = run.start, end = run.start + run.count; k < end; k++) {
      if (this.txCount === this.txMax) {
        this.flush();
        this.external = run.buf;
      }
      const i = this.txCount++;
      this.txWhich[i] = 1;
      this.txOffsets[i] = offsets[k];
      this.txLengths[i] = lengths[k];
      this.txAddrs.set(addr, i * ADDR_LEN);
    }
  }

  flush(): void {
    const count = this.txCount;
    if (count === 0 || this.closed) return;
    this.txCount = 0;
    this.txUsed = 0;
    const external = this.external;
    this.external = null;
    if (external !== null && external !== this.senderExternal) {
      if (this.addon.udpSenderExternal(this.sender, external) !== 0) {
        this.stats.sendErrors += count;
        return;
      }
      this.senderExternal = external;
    }
    const sent = this.addon.udpSenderSend(this.sender, count, (this.dualStack ? 1 : 0) | (this.gso ? 2 : 0));
    if (sent < 0) {
      this.stats.sendErrors += count;
      return;
    }
    this.stats.sendErrors += this.txResult[0];
    this.stats.sendDropped += count - sent - this.txResult[0];
    if (this.txResult[1] !== 0) this.gso = false;
    this.stats.sourceRefused += this.txResult[2];
  }

  setMark(mark: number): string | null {
    const r = this.addon.udpSetMark(this.fd, mark);
    if (r < 0) return `cannot set firewall mark ${mark}: ${errnoName(-r, String(r))}`;
    this.fwMark = mark;
    return null;
  }

  setPathMtuProbing(): string | null {
    const r = this.addon.udpSetPmtuProbe(this.fd, this.dualStack);
    return r < 0 ? `cannot set DF without local fragmentation on the UDP socket: ${errnoName(-r, String(r))}` : null;
  }

  drops(): { outside: Record<string, number>; inside: Record<string, number> } {
    const s = this.stats;
    return {
      outside: nonZero({ 'udp-truncated': s.truncated }),
      inside: nonZero({ 'udp-send-failed': s.sendErrors, 'udp-send-buffer-full': s.sendDropped }),
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    this.addon.udpSenderClose(this.sender);
    this.senderExternal = null;
    this.addon.closeFd(this.fd);
  }
}

function nonZero(r: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(r).filter(([, v]) => v > 0));
}

/** EADDRINUSE and friends by name, as node:dgram reports them. */
function errnoName(code: number, message: string): string {
  return Object.entries(constants.errno).find(([, v]) => v === code)?.[0] ?? message;
}

/** 16 address bytes (IPv4 as ::ffff:a.b.c.d) at `at` as text. */
function addrString(b: Uint8Array, at: number): string {
  let mapped = b[at + 10] === 0xff && b[at + 11] === 0xff;
  for (let k = 0; k < 10 && mapped; k++) mapped = b[at + k] === 0;
  return mapped ? `${b[at + 12]}.${b[at + 13]}.${b[at + 14]}.${b[at + 15]}` : formatIpAddr({ version: 6, bytes: b.subarray(at, at + 16) });
}

function putAddr(a: Uint8Array, at: number, ip: { version: 4 | 6; bytes: Uint8Array }): void {
  if (ip.version === 4) {
    a[at + 10] = 0xff;
    a[at + 11] = 0xff;
    a.set(ip.bytes, at + 12);
  } else a.set(ip.bytes, at);
}

/** Whether the ADDR_LEN address bytes at `at` in `addrs` are `saved`'s. */
function sameAddr(addrs: Uint8Array, at: number, saved: Uint8Array): boolean {
  for (let k = 0; k < ADDR_LEN; k++) if (addrs[at + k] !== saved[k]) return false;
  return true;
}
