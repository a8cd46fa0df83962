// PacketConn: the daemon's one UDP socket (dual-stack where possible) with large buffers.
// Two implementations: NativeUdpConn (the addon: recvmmsg/sendmmsg, UDP GRO/GSO; native-udp.ts),
// the default, and UdpConn (node:dgram, one syscall and one callback per datagram), the fallback.
import dgram from 'node:dgram';
import { normalizeAddress, type Endpoint } from '../tunnel/endpoint.js';
import { MeshdError } from '../errors.js';
import type { DatagramRun } from '../tunnel/outbox.js';

export interface PacketConn {
  readonly port: number;
  /** Which implementation, for logs and status. */
  readonly kind: string;
  /** Sends at once (along with anything queued). */
  send(data: Uint8Array, to: Endpoint): void;
  /** Queues a datagram for the next flush(); `data` may be reused as soon as this returns. */
  queue(data: Uint8Array, to: Endpoint): void;
  /** Queues a run of datagrams (Outbox.runs) for the next flush(); its buffer must not change before then. */
  queueRun(run: DatagramRun, to: Endpoint): void;
  flush(): void;
  close(): void;
  /** The firewall mark on the socket's packets (0: none). */
  readonly fwMark: number;
  /** Sets the mark (wg-quick's FwMark); an error message when it cannot be set, else null. */
  setMark(mark: number): string | null;
  /**
   * Sets DF on every datagram and stops the kernel fragmenting them (meshd probes each peer's path
   * MTU itself, path-mtu.ts); an error message when this socket cannot, else null.
   */
  setPathMtuProbing(): string | null;
  /** Datagrams lost in this layer, by reason (only the counters that are not zero). */
  drops(): { outside: Record<string, number>; inside: Record<string, number> };
}

export interface PacketHandlers {
  /** One datagram; `msg` is only valid until onBatchEnd returns (it may be decrypted in place). */
  onMessage(msg: Uint8Array, from: Endpoint): void;
  /**
   * A whole batch at once instead of onMessage per datagram, when given: datagram i is
   * buf[offsets[i], +lengths[i]) from from[i]; valid until onBatchEnd returns. The arrays are the
   * reader's own: the handler may rewrite them.
   */
  onMessages?(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, from: Endpoint[], count: number): void;
  /** After each batch of onMessage calls: the moment to flush what they queued. */
  onBatchEnd(): void;
}

/** Socket buffers asked for (as root past net.core.[rw]mem_max; otherwise capped there). */
export const UDP_BUFFER_BYTES = 4 * 1024 * 1024;

export class UdpConn implements PacketConn {
  readonly kind = 'dgram';
  private closed = false;

  private constructor(
    private readonly sock: dgram.Socket,
    private readonly dualStack: boolean,
  ) {}

  /** Binds `port` (0 = any) on all addresses, IPv6 dual-stack if the host has IPv6, else IPv4. */
  static async bind(port: number, h: PacketHandlers): Promise<UdpConn> {
    try {
      return await UdpConn.bindFamily('udp6', port, h);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw bindError(port, code ?? (err as Error).message);
      try {
        return await UdpConn.bindFamily('udp4', port, h);
      } catch (err4) {
        const e = err4 as NodeJS.ErrnoException;
        throw bindError(port, e.code ?? e.message);
      }
    }
  }

  private static bindFamily(type: 'udp4' | 'udp6', port: number, h: PacketHandlers): Promise<UdpConn> {
    return new Promise((resolve, reject) => {
      const sock = dgram.createSocket({
        type,
        ipv6Only: false,
        recvBufferSize: UDP_BUFFER_BYTES,
        sendBufferSize: UDP_BUFFER_BYTES,
      });
      const onError = (err: Error) => {
        sock.close();
        reject(err);
      };
      sock.once('error', onError);
      sock.bind({ port, address: type === 'udp6' ? '::' : '0.0.0.0', exclusive: true }, () => {
        sock.off('error', onError);
        const conn = new UdpConn(sock, type === 'udp6');
        sock.on('message', (msg, rinfo) => {
          h.onMessage(msg, { address: normalizeAddress(rinfo.address), port: rinfo.port });
          h.onBatchEnd();
        });
        // Send errors (no route, ICMP unreachable reported on a later call) are not fatal for a VPN.
        sock.on('error', () => {});
        resolve(conn);
      });
    });
  }

  get port(): number {
    return this.sock.address().port;
  }

  send(data: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    const addr = this.dualStack && !to.address.includes(':') ? `::ffff:${to.address}` : to.address;
    // dgram sends after this call returns: give it its own copy.
    this.sock.send(Buffer.from(data), to.port, addr);
  }

  queue(data: Uint8Array, to: Endpoint): void {
    this.send(data, to);
  }

  queueRun(run: DatagramRun, to: Endpoint): void {
    for (let k = run.start, end = run.start + run.count; k < end; k++) this.send(run.buf.subarray(run.offsets[k], run.offsets[k] + run.lengths[k]), to);
  }

  flush(): void {}

  readonly fwMark = 0;

  setMark(mark: number): string | null {
    return mark === 0 ? null : 'node:dgram sockets cannot carry a firewall mark (FwMark needs the fast path: unset MESHD_FASTPATH)';
  }

  setPathMtuProbing(): string | null {
    return 'node:dgram sockets cannot send without local fragmentation (path MTU probing needs the fast path: unset MESHD_FASTPATH)';
  }

  drops(): { outside: Record<string, number>; inside: Record<string, number> } {
    return { outside: {}, inside: {} };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
}

export function bindError(port: number, code: string): MeshdError {
  return new MeshdError('EUDP', `cannot bind UDP port ${port}: ${code}`);
}
