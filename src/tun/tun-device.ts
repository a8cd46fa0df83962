// TunDevice: the seam between the daemon and a TUN interface (real via the addon, fake in tests).
import { MeshdError } from '../errors.js';
import { TRANSPORT_HEADER_SIZE, TRANSPORT_TAILROOM } from '../wire/wireguard.js';
import { loadNative, type ReaderHandle } from './native.js';

export interface TunHandlers {
  onPacket(buf: Uint8Array, offset: number, length: number): void;
  /**
   * A whole batch at once (packet i at offsets[i], lengths[i] long), instead of onPacket per packet
   * when given; the arrays are the reader's own and may be rewritten (they are refilled per batch).
   */
  onPackets?(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): void;
  onBatchEnd(): void;
  /** A read failed (errno), e.g. the interface was deleted under us. */
  onError(errno: number): void;
}

export interface TunDevice {
  readonly name: string;
  /** TSO on reads and GRO on writes (IFF_VNET_HDR) are in use. */
  readonly offload: boolean;
  /** And for UDP (USO): UDP GSO packets on reads, a flow's datagrams merged on writes. */
  readonly uso: boolean;
  /**
   * Starts delivering packets: `onPacket(buf, offset, length)` per packet, then `onBatchEnd()` once
   * per batch read, the moment to flush what they queued. Each packet has TUN_HEADROOM bytes free
   * before it and TUN_TAILROOM after it in `buf`, which the handler may overwrite (sealing in
   * place); the buffer is reused after onBatchEnd returns.
   */
  start(handlers: TunHandlers): void;
  /** Writes packets (views; merged into TCP, and with USO UDP, superpackets when offloading). Returns failed writes. */
  writeBatch(packets: readonly Uint8Array[], count: number): number;
  /**
   * Reads what is queued now, without waiting for the next poll, and hands it to the handlers as a
   * polled batch would be: for a packet the kernel answers while we write (an echo reply, a TCP
   * ACK), to send it on at once instead of after a round of the event loop.
   */
  readNow?(): void;
  /** Packets lost at the TUN, by reason (only the counters that are not zero). */
  drops(): Record<string, number>;
  close(): void;
}

/** Room kept around every packet read: a WireGuard transport header before, padding and tag after. */
export const TUN_HEADROOM = TRANSPORT_HEADER_SIZE;
export const TUN_TAILROOM = TRANSPORT_TAILROOM;
/** Packets one batch may hold (TSO superpackets split into wire-sized packets) and its buffer. */
export const TUN_BATCH_PACKETS = 1024;
export const TUN_BATCH_BYTES = 2 * 1024 * 1024;

export interface TunStats {
  /** Packets the kernel handed over that could not be parsed (bad virtio-net header). */
  malformed: number;
  /** Packets dropped because a batch buffer was full. */
  overflow: number;
  /** Writes to the TUN (after merging) and how many failed. */
  writes: number;
  writeErrors: number;
  /**
   * Wakeups handed over after a single read: sparse traffic, where the reader skips the read that
   * would only find the queue empty. And reads that did find it empty (a batch's last read).
   */
  sparseWakeups: number;
  emptyReads: number;
}

export class LinuxTun implements TunDevice {
  private reader: ReaderHandle | null = null;
  /** The reader's callback: a batch (count) handed to the handlers; readNow uses it too. */
  private deliver: ((count: number) => void) | null = null;
  private closed = false;
  /** Kept by the reader: malformed, overflow, sparse wakeups, empty reads (native/src/readers.cc). */
  private readonly readStats = new Int32Array(4);
  private writes = 0;
  private writeErrors = 0;

  private constructor(
    readonly name: string,
    private readonly fd: number,
    readonly offload: boolean,
    readonly uso: boolean,
  ) {}

  /** Opens `name`; with `offload`, asks the kernel for TSO/checksum offload (falls back silently). */
  static open(name: string, offload = true): LinuxTun {
    const addon = loadNative();
    const r = addon.tunOpen(name, offload);
    if (r.fd < 0) throw new MeshdError('ETUN', `cannot create TUN device ${name}: ${r.error}`);
    return new LinuxTun(r.name, r.fd, r.offload, r.uso);
  }

  start(h: TunHandlers): void {
    const addon = loadNative();
    const buffer = new Uint8Array(TUN_BATCH_BYTES);
    const offsets = new Int32Array(TUN_BATCH_PACKETS);
    const lengths = new Int32Array(TUN_BATCH_PACKETS);
    const deliver = (count: number): void => {
      if (count < 0) {
        h.onError(-count);
        return;
      }
      if (h.onPackets) h.onPackets(buffer, offsets, lengths, count);
      else for (let i = 0; i < count; i++) h.onPacket(buffer, offsets[i], lengths[i]);
      h.onBatchEnd();
    };
    this.deliver = deliver;
    this.reader = new addon.TunReader(this.fd, buffer, TUN_HEADROOM, TUN_TAILROOM, offsets, lengths, this.readStats, this.offload, deliver);
    const r = this.reader.start();
    if (r !== 0) throw new MeshdError('ETUN', `cannot poll TUN device ${this.name}: uv error ${r}`);
  }

  readNow(): void {
    if (this.closed || !this.reader || !this.deliver) return;
    const n = this.reader.readNow();
    if (n !== 0) this.deliver(n);
  }

  writeBatch(packets: readonly Uint8Array[], count: number): number {
    if (this.closed || count === 0) return 0;
    const r = loadNative().tunWriteBatch(this.fd, packets, count, this.offload, this.uso);
    const errors = r % 65536;
    this.writes += Math.floor(r / 65536);
    this.writeErrors += errors;
    return errors;
  }

  stats(): TunStats {
    const r = this.readStats;
    return { malformed: r[0], overflow: r[1], writes: this.writes, writeErrors: this.writeErrors, sparseWakeups: r[2], emptyReads: r[3] };
  }

  drops(): Record<string, number> {
    const s = this.stats();
    const all: Record<string, number> = { 'tun-malformed': s.malformed, 'tun-batch-full': s.overflow, 'tun-write-failed': s.writeErrors };
    return Object.fromEntries(Object.entries(all).filter(([, v]) => v > 0));
  }

  /** Closing the fd deletes the (non-persistent) interface, and with it its addresses and routes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    loadNative().closeFd(this.fd);
  }
}
