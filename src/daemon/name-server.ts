// The mesh's names on port 53 of this host's own mesh addresses, UDP and TCP (DESIGN.md §10). It
// listens nowhere else. The answers come from the roster (src/mesh/names.ts); malformed queries are
// counted and get no answer; TCP connections are few, bounded in size and closed when idle.
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from '../log.js';
import { answerQuery, type NameDropReason, type NameZone } from '../mesh/names.js';

export const DNS_PORT = 53;
/** TCP connections served at once, and how long an idle one stays open. */
export const DNS_MAX_TCP = 64;
export const DNS_TCP_IDLE_MS = 10_000;

export interface NameServerStatus {
  listen: string[];
  answered: Record<string, number>;
  drops: Record<NameDropReason, number>;
}

export class NameServer {
  private readonly udp: dgram.Socket[] = [];
  private readonly tcp: net.Server[] = [];
  private readonly conns = new Set<net.Socket>();
  private readonly answered = new Map<string, number>();
  private readonly drops: Record<NameDropReason, number> = { 'dns-malformed': 0, 'dns-not-query': 0 };
  readonly listen: string[] = [];

  private constructor(
    private readonly zone: () => NameZone | null,
    private readonly log: Logger,
  ) {}

  /** Listens on port 53 of each address; an address that cannot be bound is logged and skipped. */
  static async start(addresses: string[], zone: () => NameZone | null, log: Logger): Promise<NameServer> {
    const s = new NameServer(zone, log);
    for (const a of addresses) {
      try {
        await s.bind(a);
        s.listen.push(a.includes(':') ? `[${a}]:${DNS_PORT}` : `${a}:${DNS_PORT}`);
      } catch (err) {
        log.warn({ component: 'dns', address: a, err: (err as Error).message }, 'cannot serve names on this address');
      }
    }
    return s;
  }

  private async bind(address: string): Promise<void> {
    const v6 = address.includes(':');
    // A large receive buffer: queries arrive in bursts when the tunnel writes a batch to the TUN.
    const sock = dgram.createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6, recvBufferSize: 1 << 20 });
    sock.on('message', (msg, rinfo) => {
      const r = this.answer(msg, false);
      if (r) sock.send(r, rinfo.port, rinfo.address);
    });
    sock.on('error', (err) => this.log.warn({ component: 'dns', err: err.message }, 'name server socket error'));
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind(DNS_PORT, address, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    this.udp.push(sock);
    const server = net.createServer((c) => this.serveTcp(c));
    server.on('error', (err) => this.log.warn({ component: 'dns', err: err.message }, 'name server error'));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: DNS_PORT, host: address, ipv6Only: v6 }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.tcp.push(server);
  }

  private answer(query: Uint8Array, tcp: boolean): Uint8Array | null {
    const r = answerQuery(query, this.zone(), tcp);
    if (!r.ok) {
      this.drops[r.reason]++;
      return null;
    }
    this.answered.set(r.rcode, (this.answered.get(r.rcode) ?? 0) + 1);
    return r.bytes;
  }

  /** DNS over TCP: messages with a 2-byte length, several per connection (RFC 7766). */
  private serveTcp(c: net.Socket): void {
    if (this.conns.size >= DNS_MAX_TCP) {
      c.destroy();
      return;
    }
    this.conns.add(c);
    c.setTimeout(DNS_TCP_IDLE_MS, () => c.destroy());
    c.on('error', () => c.destroy());
    c.on('close', () => this.conns.delete(c));
    let buf: Buffer = Buffer.alloc(0);
    c.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const r = this.answer(buf.subarray(2, 2 + len), true);
        buf = buf.subarray(2 + len);
        if (!r) {
          c.destroy();
          return;
        }
        const out = Buffer.alloc(2 + r.length);
        out.writeUInt16BE(r.length, 0);
        out.set(r, 2);
        c.write(out);
      }
      if (buf.length > 2 + 0xffff) c.destroy();
    });
  }

  status(): NameServerStatus {
    return { listen: this.listen, answered: Object.fromEntries(this.answered), drops: { ...this.drops } };
  }

  close(): void {
    for (const s of this.udp) s.close();
    for (const s of this.tcp) s.close();
    for (const c of this.conns) c.destroy();
    this.udp.length = 0;
    this.tcp.length = 0;
  }
}
