// PacketConn: the daemon's one UDP socket (dual-stack where possible) with large buffers.
import dgram from 'node:dgram';
import { normalizeAddress, type Endpoint } from '../tunnel/endpoint.js';
import { MeshdError } from '../errors.js';

export interface PacketConn {
  readonly port: number;
  send(data: Uint8Array, to: Endpoint): void;
  close(): void;
}

/** Socket buffers asked for (the kernel caps them at net.core.[rw]mem_max). */
export const UDP_BUFFER_BYTES = 4 * 1024 * 1024;

export class UdpConn implements PacketConn {
  private closed = false;

  private constructor(
    private readonly sock: dgram.Socket,
    private readonly dualStack: boolean,
  ) {}

  /** Binds `port` (0 = any) on all addresses, IPv6 dual-stack if the host has IPv6, else IPv4. */
  static async bind(port: number, onMessage: (msg: Buffer, from: Endpoint) => void): Promise<UdpConn> {
    try {
      return await UdpConn.bindFamily('udp6', port, onMessage);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EAFNOSUPPORT' && code !== 'EADDRNOTAVAIL') throw wrap(err, port);
      try {
        return await UdpConn.bindFamily('udp4', port, onMessage);
      } catch (err4) {
        throw wrap(err4, port);
      }
    }
  }

  private static bindFamily(type: 'udp4' | 'udp6', port: number, onMessage: (msg: Buffer, from: Endpoint) => void): Promise<UdpConn> {
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
        sock.on('message', (msg, rinfo) => onMessage(msg, { address: normalizeAddress(rinfo.address), port: rinfo.port }));
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
    this.sock.send(data, to.port, addr);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.close();
  }
}

function wrap(err: unknown, port: number): MeshdError {
  const e = err as NodeJS.ErrnoException;
  return new MeshdError('EUDP', `cannot bind UDP port ${port}: ${e.code ?? e.message}`);
}
