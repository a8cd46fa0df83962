// TunDevice: the seam between the daemon and a TUN interface (real via the addon, fake in tests).
import { MeshdError } from '../errors.js';
import { loadNative, type TunReaderHandle } from './native.js';

export interface TunHandlers {
  onPacket(buf: Uint8Array, offset: number, length: number): void;
  onBatchEnd(): void;
  /** A read failed (errno), e.g. the interface was deleted under us. */
  onError(errno: number): void;
}

export interface TunDevice {
  readonly name: string;
  /**
   * Starts delivering packets: `onPacket(buf, offset, length)` per packet (the buffer is reused
   * after it returns), then `onBatchEnd()` once per batch read, the moment to flush what they queued.
   */
  start(handlers: TunHandlers): void;
  /** Writes one packet; returns bytes written or -errno (never throws on EAGAIN). */
  write(buf: Uint8Array, offset: number, length: number): number;
  close(): void;
}

/** Packets read per readiness event, and the slot size (max MTU plus room for headers). */
export const TUN_BATCH = 64;
export const TUN_SLOT_SIZE = 65_536 + 64;
export const TUN_HEADROOM = 32;

export class LinuxTun implements TunDevice {
  private reader: TunReaderHandle | null = null;
  private closed = false;

  private constructor(
    readonly name: string,
    private readonly fd: number,
  ) {}

  static open(name: string): LinuxTun {
    const addon = loadNative();
    const r = addon.tunOpen(name);
    if (r.fd < 0) throw new MeshdError('ETUN', `cannot create TUN device ${name}: ${r.error}`);
    return new LinuxTun(r.name, r.fd);
  }

  start(h: TunHandlers): void {
    const addon = loadNative();
    const buffer = Buffer.allocUnsafe(TUN_BATCH * TUN_SLOT_SIZE);
    const lengths = new Int32Array(TUN_BATCH);
    this.reader = new addon.TunReader(this.fd, buffer, TUN_SLOT_SIZE, TUN_HEADROOM, lengths, (count) => {
      if (count < 0) {
        h.onError(-count);
        return;
      }
      for (let i = 0; i < count; i++) h.onPacket(buffer, i * TUN_SLOT_SIZE + TUN_HEADROOM, lengths[i]);
      h.onBatchEnd();
    });
    const r = this.reader.start();
    if (r !== 0) throw new MeshdError('ETUN', `cannot poll TUN device ${this.name}: uv error ${r}`);
  }

  write(buf: Uint8Array, offset: number, length: number): number {
    if (this.closed) return -9; // EBADF
    return loadNative().tunWrite(this.fd, buf, offset, length);
  }

  /** Closing the fd deletes the (non-persistent) interface, and with it its addresses and routes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader?.stop();
    loadNative().tunClose(this.fd);
  }
}
