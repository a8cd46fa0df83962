// meshd-relay: forwards opaque packets between logged-in clients, addressed by public key.
// It never sees plaintext (WireGuard ciphertext and sealed disco only). Every frame, queue and
// connection is bounded; a bad frame closes that one connection with a reason, nothing else.
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import type { Logger } from '../src/log.js';
import { keyId, keyToBase64, publicKeyOf, type NodePrivateKey } from '../src/crypto/keys.js';
import { verifyLoginProof } from '../src/crypto/relay-login.js';
import {
  CHALLENGE_LEN,
  CLOSE_BAD_PROOF,
  CLOSE_FRAME_BEFORE_LOGIN,
  CLOSE_LOGIN_TIMEOUT,
  CLOSE_MALFORMED,
  CLOSE_NOT_ALLOWED,
  CLOSE_REPLACED,
  CLOSE_SERVER_FULL,
  CLOSE_SHUTDOWN,
  CLOSE_NOT_MEMBER,
  FEATURE_MESH,
  FRAME_ROSTER,
  FRAME_ROSTER_DELTA,
  FEATURE_ROSTER_DELTA,
  encodeRosterHeld,
  BATCH_ENTRY_HEADER_LEN,
  BATCH_HEADER_LEN,
  FEATURE_BATCH,
  FRAME_RECV_BATCH,
  FRAME_RECV_PACKET,
  FRAME_SEND_BATCH,
  NOTICE_REPLACED,
  NOTICE_SHUTDOWN,
  PEER_GONE_DISCONNECTED,
  PEER_GONE_NOT_HERE,
  decodeRelayFrame,
  encodeKeepalive,
  encodeNotice,
  encodePeerGone,
  encodePeerPresent,
  encodePong,
  encodeRecvPacket,
  encodeServerHello,
  encodeServerWelcome,
  forEachBatchPacket,
} from '../src/wire/relay.js';
import type { HostPort } from '../src/config/config.js';
import { RelayMetrics } from './metrics.js';
import type { Admission, MeshDirectory } from './mesh.js';
import { RosterAssembler, rosterParts } from '../src/wire/roster-parts.js';
import { MAX_ROSTER_BYTES } from '../src/mesh/roster.js';

export interface RelayLimits {
  /** Largest WebSocket message accepted (a frame: type, key and packet). */
  maxFrameBytes: number;
  /** Bytes that may wait in one destination's send buffer before packets to it are dropped. */
  queueBytes: number;
  /** Sustained bytes per second one client may send through the relay (0 = unlimited). */
  clientBytesPerSecond: number;
  /** Burst allowance for the per-client rate. */
  clientBurstBytes: number;
  maxClients: number;
  loginTimeoutMs: number;
  keepaliveMs: number;
  /** Largest signed roster taken from a client (its parts are assembled up to this). */
  maxRosterBytes: number;
  /** Rosters one client may publish in a burst, and per second after it. */
  publishBurst: number;
  publishPerSecond: number;
  /** Bytes of rosters being assembled from all clients together: more publishes wait their turn. */
  assemblyBytes: number;
}

export const DEFAULT_LIMITS: Readonly<RelayLimits> = Object.freeze({
  maxFrameBytes: 256 * 1024, // a batch of a flush's packets for one peer (RELAY_MAX_BATCH_BYTES)
  queueBytes: 2 * 1024 * 1024,
  clientBytesPerSecond: 125_000_000, // 1 Gbit/s: a guard against one client starving the rest
  clientBurstBytes: 8 * 1024 * 1024,
  maxClients: 50_000,
  loginTimeoutMs: 5_000,
  keepaliveMs: 30_000,
  maxRosterBytes: MAX_ROSTER_BYTES,
  publishBurst: 10,
  publishPerSecond: 1,
  assemblyBytes: 64 * 1024 * 1024,
});

/**
 * AES-128-GCM first (then Node's defaults): the relay decrypts and re-encrypts every byte, and on
 * CPUs with AES instructions the 128-bit key is ~12 % cheaper than AES-256 (Go's TLS, which
 * Tailscale's DERP uses, prefers it the same way). Clients that cannot do it get the next one.
 */
const TLS_CIPHERS = ['TLS_AES_128_GCM_SHA256', ...tls.DEFAULT_CIPHERS.split(':').filter((c) => c !== 'TLS_AES_128_GCM_SHA256')].join(':');

export interface RelayServerOptions {
  privateKey: NodePrivateKey;
  listen: HostPort[];
  tls?: { cert: Buffer; key: Buffer };
  limits: RelayLimits;
  allowKeys: () => Set<string> | null;
  /** With --mesh-key: the rosters this relay carries, and whom they admit. */
  mesh?: MeshDirectory | null;
  log: Logger;
}

/**
 * Keys one client is told about (peer-present when they log in, peer-gone when they leave): those it
 * sent to, present or not. Bounded per client, oldest forgotten first: a client that talks to more
 * peers than this only loses the early notice for the oldest, never a packet.
 */
export const MAX_WATCHED_PER_CLIENT = 256;

interface Client {
  ws: WebSocket;
  key: Uint8Array | null;
  id: string;
  /** Features the client announced at login (FEATURE_BATCH: it takes recv-batch frames). */
  features: number;
  tokens: number;
  lastRefillMs: number;
  /** Key ids this client is in `watchers` for, oldest first. */
  watching: Set<string>;
  /** The destination of the client's previous frame, so a stream to one peer looks it up once. */
  lastDst: Uint8Array;
  lastDstId: string;
  /** On a mesh relay: what the key may do (see MeshDirectory.admission). */
  admission: Admission;
  /** Mesh key id → the serial this subscriber holds (it said so, or we sent it). */
  subscribed: Map<string, number>;
  /** The roster this client is publishing, part by part (null: none in progress). */
  assembler: RosterAssembler | null;
  /** Bytes of the assembly budget this client's roster in progress holds. */
  assemblyBytes: number;
  /** Parts of a refused publish are ignored until the next roster starts. */
  discardingPublish: boolean;
  publishTokens: number;
  publishRefillMs: number;
}

export class RelayServer {
  readonly metrics = new RelayMetrics();
  readonly publicKey: Uint8Array;
  private readonly servers: (http.Server | https.Server)[] = [];
  private readonly wss: WebSocketServer;
  private readonly clients = new Map<string, Client>();
  private readonly connections = new Set<Client>();
  /** Key id → clients that sent to it (MAX_WATCHED_PER_CLIENT each): told when it arrives or leaves. */
  private readonly watchers = new Map<string, Set<Client>>();
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  /** Mesh key id → clients subscribed to its rosters. */
  private readonly subscribers = new Map<string, Set<Client>>();
  /** Bytes held by every client's roster in progress (limits.assemblyBytes at most). */
  private assembling = 0;
  private expiryTimer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: RelayServerOptions) {
    this.publicKey = publicKeyOf(opts.privateKey);
    this.wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: opts.limits.maxFrameBytes });
  }

  /** Listens on every address; returns the bound ports in the same order. */
  async start(): Promise<number[]> {
    const ports: number[] = [];
    for (const l of this.opts.listen) {
      const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.http(req, res);
      const server = this.opts.tls ? https.createServer({ cert: this.opts.tls.cert, key: this.opts.tls.key, ciphers: TLS_CIPHERS, honorCipherOrder: true }, handler) : http.createServer(handler);
      server.on('upgrade', (req, socket, head) => this.upgrade(req, socket, head));
      server.on('clientError', (_err, socket) => socket.destroy());
      server.headersTimeout = this.opts.limits.loginTimeoutMs;
      server.requestTimeout = this.opts.limits.loginTimeoutMs * 2;
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: l.port, host: l.host === '' ? undefined : l.host, ipv6Only: false }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      const addr = server.address();
      ports.push(typeof addr === 'object' && addr ? addr.port : l.port);
      this.servers.push(server);
    }
    this.keepaliveTimer = setInterval(() => {
      const ka = encodeKeepalive();
      for (const c of this.clients.values()) c.ws.send(ka);
    }, this.opts.limits.keepaliveMs);
    this.keepaliveTimer.unref();
    this.scheduleExpiry();
    return ports;
  }

  /** Stops accepting, tells every client, closes every connection and listener. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const closed = Promise.all(this.servers.map((s) => new Promise((r) => s.close(() => r(undefined)))));
    const notice = encodeNotice(NOTICE_SHUTDOWN, 'relay shutting down');
    for (const c of this.connections) {
      if (c.key) c.ws.send(notice);
      c.ws.close(CLOSE_SHUTDOWN, 'relay shutting down');
    }
    await new Promise((r) => setTimeout(r, 200));
    for (const c of this.connections) c.ws.terminate();
    await closed;
    this.wss.close();
  }

  get clientCount(): number {
    return this.clients.size;
  }

  private async http(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method === 'GET' && req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`ok ${this.clients.size} clients\n`);
    } else if (req.method === 'GET' && req.url === '/metrics') {
      res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(await this.metrics.registry.metrics());
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('meshd-relay: connect with a WebSocket\n');
    }
  }

  private upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (this.stopping) {
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws));
  }

  private accept(ws: WebSocket): void {
    const c: Client = {
      ws,
      key: null,
      id: '',
      features: 0,
      tokens: this.opts.limits.clientBurstBytes,
      lastRefillMs: Date.now(),
      watching: new Set(),
      lastDst: new Uint8Array(32),
      lastDstId: '',
      admission: null,
      subscribed: new Map(),
      assembler: null,
      assemblyBytes: 0,
      discardingPublish: false,
      publishTokens: this.opts.limits.publishBurst,
      publishRefillMs: Date.now(),
    };
    this.connections.add(c);
    this.metrics.connections.set(this.connections.size);
    ws.on('error', (err: Error & { code?: string }) => {
      if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.metrics.drop('oversized-frame');
      else this.metrics.drop('malformed');
    });
    ws.on('close', () => this.forget(c));
    if (this.connections.size > this.opts.limits.maxClients) {
      this.metrics.refuse('server-full');
      ws.close(CLOSE_SERVER_FULL, 'server full');
      return;
    }
    const challenge = new Uint8Array(randomBytes(CHALLENGE_LEN));
    const deadline = setTimeout(() => {
      if (c.key) return;
      this.metrics.refuse('login-timeout');
      ws.close(CLOSE_LOGIN_TIMEOUT, 'login timeout');
      setTimeout(() => ws.terminate(), 1000).unref();
    }, this.opts.limits.loginTimeoutMs);
    deadline.unref();
    ws.on('message', (data: RawData, isBinary: boolean) => {
      // binaryType is 'nodebuffer': a Buffer the relay owns (forwarding rewrites it in place).
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      if (!isBinary) {
        this.refuseOrDrop(c, 'malformed', 'text frames are not part of the protocol');
        return;
      }
      if (c.key) this.onFrame(c, buf);
      else if (this.login(c, buf, challenge)) clearTimeout(deadline);
    });
    ws.send(encodeServerHello(this.publicKey, challenge));
  }

  private refuseOrDrop(c: Client, reason: 'malformed', why: string): void {
    if (c.key) this.metrics.drop(reason);
    else this.metrics.refuse('malformed-login');
    c.ws.close(CLOSE_MALFORMED, why);
  }

  private login(c: Client, buf: Buffer, challenge: Uint8Array): boolean {
    const f = decodeRelayFrame(buf);
    if (f.type === 'invalid') {
      this.metrics.refuse('malformed-login');
      c.ws.close(CLOSE_MALFORMED, `malformed frame (${f.reason})`);
      return false;
    }
    if (f.type !== 'client-login') {
      this.metrics.refuse('frame-before-login');
      c.ws.close(CLOSE_FRAME_BEFORE_LOGIN, `${f.type} before login`);
      return false;
    }
    if (!verifyLoginProof(this.opts.privateKey, this.publicKey, f.clientKey, challenge, f.nonce, f.sealed)) {
      this.metrics.refuse('bad-proof');
      c.ws.close(CLOSE_BAD_PROOF, 'key proof failed');
      return false;
    }
    const id = keyId(f.clientKey);
    const allow = this.opts.allowKeys();
    if (allow && !allow.has(id)) {
      this.metrics.refuse('not-allowed');
      c.ws.close(CLOSE_NOT_ALLOWED, 'key not allowed on this relay');
      return false;
    }
    const mesh = this.opts.mesh;
    if (mesh) {
      c.admission = mesh.admission(id, Date.now());
      if (!c.admission) {
        this.metrics.refuse('not-member');
        c.ws.close(CLOSE_NOT_MEMBER, "not a member of this relay's meshes");
        return false;
      }
    }
    const old = this.clients.get(id);
    if (old) {
      this.metrics.replaced.inc();
      old.ws.send(encodeNotice(NOTICE_REPLACED, 'replaced by a newer connection with the same key'));
      old.ws.close(CLOSE_REPLACED, 'replaced by a newer connection');
      this.unwatchAll(old);
      old.key = null; // its close must not remove the new entry
    }
    c.key = f.clientKey;
    c.id = id;
    c.features = f.features;
    this.clients.set(id, c);
    this.metrics.logins.inc();
    this.metrics.clients.set(this.clients.size);
    c.ws.send(encodeServerWelcome(this.opts.limits.keepaliveMs, this.opts.limits.maxFrameBytes, FEATURE_BATCH | (mesh ? FEATURE_MESH : 0)));
    // Whoever sent to this key (while it was away, or before it left or restarted) hears it is back,
    // and can re-send a handshake at once instead of at its next retry.
    const watching = this.watchers.get(id);
    if (watching) {
      const present = encodePeerPresent(f.clientKey);
      for (const w of watching) {
        if (w === c || !w.key) continue;
        w.ws.send(present);
        this.metrics.peerNotices.inc({ kind: 'present' });
      }
    }
    this.opts.log.debug({ component: 'relay', peer: keyToBase64(f.clientKey) }, 'client logged in');
    return true;
  }

  private onFrame(c: Client, buf: Buffer): void {
    const f = decodeRelayFrame(buf);
    switch (f.type) {
      case 'send-packet':
        this.forward(c, buf, f.key, f.packet.length, 1);
        return;
      case 'send-batch':
        this.forward(c, buf, f.key, f.body.length - BATCH_ENTRY_HEADER_LEN * f.count, f.count);
        return;
      case 'ping':
        c.ws.send(encodePong(f.data));
        return;
      case 'keepalive':
      case 'pong':
        return;
      case 'subscribe':
        this.subscribe(c, f.meshKey, f.serial);
        return;
      case 'publish':
        this.publishPart(c, f.meshKey, f.total, f.offset, f.bytes);
        return;
      default:
        this.refuseOrDrop(c, 'malformed', f.type === 'invalid' ? `malformed frame (${f.reason})` : `unexpected ${f.type} frame`);
    }
  }

  /**
   * Forwards a send-packet or send-batch frame (`frame`, addressed to `dst`, `bytes` of packet data
   * in `count` packets) as the matching recv frame: the same bytes with the type and the key
   * rewritten in place, so nothing is re-encoded or copied. A client that did not announce
   * FEATURE_BATCH gets a batch as separate recv-packet frames.
   */
  private forward(c: Client, frame: Buffer, dst: Uint8Array, bytes: number, count: number): void {
    const limits = this.opts.limits;
    const src = c.key;
    if (!src) return;
    if (limits.clientBytesPerSecond > 0) {
      const now = Date.now();
      c.tokens = Math.min(limits.clientBurstBytes, c.tokens + ((now - c.lastRefillMs) * limits.clientBytesPerSecond) / 1000);
      c.lastRefillMs = now;
      if (c.tokens < bytes) {
        this.metrics.drop('rate-limited', count);
        return;
      }
      c.tokens -= bytes;
    }
    const dstId = this.destinationId(c, dst);
    const adm = c.admission;
    if (this.opts.mesh && adm?.kind !== 'member' && !(adm?.kind === 'pending' && adm.inviters.has(dstId))) {
      this.metrics.drop('not-member', count);
      return;
    }
    this.watch(c, dstId);
    const to = this.clients.get(dstId);
    if (!to) {
      this.metrics.drop('no-destination', count);
      c.ws.send(encodePeerGone(dst, PEER_GONE_NOT_HERE));
      return;
    }
    if (to.ws.bufferedAmount > limits.queueBytes) {
      this.metrics.drop('queue-full', count);
      return;
    }
    const batch = frame[0] === FRAME_SEND_BATCH;
    if (batch && !(to.features & FEATURE_BATCH)) {
      forEachBatchPacket(frame.subarray(BATCH_HEADER_LEN), (p) => to.ws.send(encodeRecvPacket(src, p)));
    } else {
      frame[0] = batch ? FRAME_RECV_BATCH : FRAME_RECV_PACKET;
      frame.set(src, 1);
      to.ws.send(frame);
    }
    this.metrics.forwarded(count, bytes);
  }

  /** keyId(dst), computed once per run of frames to the same destination. */
  private destinationId(c: Client, dst: Uint8Array): string {
    const last = c.lastDst;
    let same = c.lastDstId !== '';
    for (let i = 0; same && i < 32; i++) same = last[i] === dst[i];
    if (!same) {
      last.set(dst);
      c.lastDstId = keyId(dst);
    }
    return c.lastDstId;
  }

  /** A client asks for a mesh's rosters: it gets the held one if newer than its own, and the held serial. */
  private subscribe(c: Client, meshKey: Uint8Array, serial: number): void {
    const mesh = this.opts.mesh;
    if (!mesh?.carries(meshKey)) {
      this.metrics.rosterRefused('roster-unknown-mesh');
      return;
    }
    const id = keyId(meshKey);
    c.subscribed.set(id, serial);
    let set = this.subscribers.get(id);
    if (!set) this.subscribers.set(id, (set = new Set()));
    set.add(c);
    const held = mesh.roster(meshKey);
    if (held && held.serial > serial) this.sendRoster(c, meshKey);
    c.ws.send(encodeRosterHeld(meshKey, held?.serial ?? 0));
  }

  /**
   * Sends the held roster to a subscriber: as a delta from the serial it holds when the client takes
   * deltas and the relay still has that roster (a change is then a few hundred bytes, not megabytes),
   * else whole. The frames of one roster or delta are the same Buffers for every subscriber.
   */
  private sendRoster(c: Client, meshKey: Uint8Array): void {
    const mesh = this.opts.mesh!;
    const held = mesh.roster(meshKey)!;
    const id = keyId(meshKey);
    const has = c.subscribed.get(id) ?? 0;
    const delta = c.features & FEATURE_ROSTER_DELTA && has > 0 ? mesh.delta(meshKey, has) : null;
    const parts = delta ? this.partsOf(FRAME_ROSTER_DELTA, meshKey, delta) : this.partsOf(FRAME_ROSTER, meshKey, held.signed);
    for (const part of parts) c.ws.send(part);
    c.subscribed.set(id, held.serial);
    if (delta) this.metrics.rosterDeltasSent.inc();
    else this.metrics.rostersSent.inc();
  }

  /** Frames of a roster or delta, built once per (type, bytes) and shared by every subscriber. */
  private partsCache = new WeakMap<Uint8Array, Buffer[]>();
  private partsOf(type: typeof FRAME_ROSTER | typeof FRAME_ROSTER_DELTA, meshKey: Uint8Array, bytes: Uint8Array): Buffer[] {
    let p = this.partsCache.get(bytes);
    if (!p) this.partsCache.set(bytes, (p = rosterParts(type, meshKey, bytes, this.opts.limits.maxFrameBytes)));
    return p;
  }

  /**
   * One part of a roster a client publishes. Members (and anyone, while a mesh has no roster here)
   * may publish, at publishPerSecond with a burst; the parts are assembled up to maxRosterBytes,
   * within a budget shared by all clients. A complete roster is checked; a newer valid one is stored,
   * pushed to every subscriber and re-decides who may stay.
   */
  private publishPart(c: Client, meshKey: Uint8Array, total: number, offset: number, bytes: Uint8Array): void {
    const limits = this.opts.limits;
    const mesh = this.opts.mesh;
    if (offset === 0) {
      this.dropAssembly(c);
      c.discardingPublish = false;
      const now = Date.now();
      c.publishTokens = Math.min(limits.publishBurst, c.publishTokens + ((now - c.publishRefillMs) * limits.publishPerSecond) / 1000);
      c.publishRefillMs = now;
      const refuse = (reason: string): void => {
        this.metrics.rosterRefused(reason);
        c.discardingPublish = true;
        if (mesh?.carries(meshKey)) c.ws.send(encodeRosterHeld(meshKey, mesh.serial(meshKey)));
      };
      if (!mesh?.carries(meshKey)) return refuse('roster-unknown-mesh');
      if (c.admission?.kind !== 'member' && c.admission?.kind !== 'bootstrap') return refuse('roster-not-member');
      if (c.publishTokens < 1) return refuse('roster-rate-limited');
      if (total > limits.maxRosterBytes) return refuse('roster-oversized');
      if (this.assembling + total > limits.assemblyBytes) return refuse('roster-busy');
      c.publishTokens -= 1;
      c.assembler = new RosterAssembler(limits.maxRosterBytes);
      c.assemblyBytes = total;
      this.assembling += total;
    } else if (c.discardingPublish) {
      return;
    }
    const a = c.assembler;
    if (!a) {
      this.metrics.rosterRefused('roster-out-of-order');
      c.discardingPublish = true;
      return;
    }
    const r = a.add(meshKey, total, offset, bytes);
    if (r.kind === 'more') return;
    this.dropAssembly(c);
    if (r.kind === 'refused') {
      this.metrics.rosterRefused(r.reason);
      c.discardingPublish = true;
      return;
    }
    const offer = mesh!.offer(meshKey, r.bytes);
    if (!offer.ok) {
      this.metrics.rosterRefused(offer.reason);
      c.ws.send(encodeRosterHeld(meshKey, mesh!.serial(meshKey)));
      return;
    }
    this.metrics.rostersAccepted.inc();
    this.opts.log.info({ component: 'relay', serial: offer.roster.serial, members: offer.roster.members.length }, 'newer roster accepted');
    c.ws.send(encodeRosterHeld(meshKey, offer.roster.serial));
    const id = keyId(meshKey);
    if (c.subscribed.has(id)) c.subscribed.set(id, offer.roster.serial);
    for (const s of this.subscribers.get(id) ?? []) {
      if (s !== c) this.sendRoster(s, meshKey);
    }
    this.readmit();
  }

  private dropAssembly(c: Client): void {
    this.assembling -= c.assemblyBytes;
    c.assemblyBytes = 0;
    c.assembler = null;
  }

  /** Bytes of rosters being assembled from all clients now (bounded by limits.assemblyBytes). */
  get assemblingBytes(): number {
    return this.assembling;
  }

  /** After a roster change (or an expiry): every connection's admission again; those no longer admitted go. */
  private readmit(): void {
    const mesh = this.opts.mesh;
    if (!mesh) return;
    const now = Date.now();
    for (const c of this.clients.values()) {
      c.admission = mesh.admission(c.id, now);
      if (!c.admission) {
        this.metrics.removedMembers.inc();
        this.opts.log.info({ component: 'relay', peer: keyToBase64(c.key!) }, 'connection closed: no longer a member');
        c.ws.close(CLOSE_NOT_MEMBER, 'no longer a member of this mesh');
      }
    }
    this.scheduleExpiry();
  }

  private scheduleExpiry(): void {
    const mesh = this.opts.mesh;
    if (!mesh) return;
    if (this.expiryTimer) clearTimeout(this.expiryTimer);
    const now = Date.now();
    const next = mesh.nextExpiryMs(now);
    if (next === Infinity) return;
    this.expiryTimer = setTimeout(() => this.readmit(), Math.min(2 ** 31 - 1, next - now + 1));
    this.expiryTimer.unref();
  }

  private watch(c: Client, id: string): void {
    if (c.watching.has(id)) return;
    if (c.watching.size >= MAX_WATCHED_PER_CLIENT) {
      const oldest = c.watching.values().next().value as string;
      this.unwatch(c, oldest);
    }
    c.watching.add(id);
    let set = this.watchers.get(id);
    if (!set) this.watchers.set(id, (set = new Set()));
    set.add(c);
  }

  private unwatch(c: Client, id: string): void {
    c.watching.delete(id);
    const set = this.watchers.get(id);
    if (!set) return;
    set.delete(c);
    if (set.size === 0) this.watchers.delete(id);
  }

  private unwatchAll(c: Client): void {
    for (const id of [...c.watching]) this.unwatch(c, id);
  }

  private forget(c: Client): void {
    this.connections.delete(c);
    for (const m of c.subscribed.keys()) this.subscribers.get(m)?.delete(c);
    c.subscribed.clear();
    this.dropAssembly(c);
    this.metrics.connections.set(this.connections.size);
    this.unwatchAll(c);
    if (c.key && this.clients.get(c.id) === c) {
      this.clients.delete(c.id);
      // Those who talked to it learn at once that it left (and try another relay), not at their next packet.
      const watching = this.watchers.get(c.id);
      if (watching && !this.stopping) {
        const gone = encodePeerGone(c.key, PEER_GONE_DISCONNECTED);
        for (const w of watching) {
          w.ws.send(gone);
          this.metrics.peerNotices.inc({ kind: 'gone' });
        }
      }
    }
    this.metrics.clients.set(this.clients.size);
  }
}
