// RelayClient: one logged-in WebSocket to a meshd-relay, kept up with exponential backoff and
// jitter. Sends packets to public keys; delivers packets from them. A dead relay is noticed by a
// closed socket at once, or by silence (no frame for RELAY_DEAD_AFTER_MS despite pings).
// Packets queued during one flush of the daemon leave as one send-batch frame per destination
// (when the relay offers batches), so a TSO superpacket's 45 segments cost one WebSocket message,
// one TLS record run and one write instead of 45.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import type { Logger } from '../log.js';
import { sealLoginProof } from '../crypto/relay-login.js';
import type { StaticIdentity } from '../noise/handshake.js';
import {
  LOGIN_NONCE_LEN,
  PING_LEN,
  RELAY_PROTOCOL_VERSION,
  decodeRelayFrame,
  BatchWriter,
  FEATURE_BATCH,
  FRAME_SEND_BATCH,
  PEER_GONE_DISCONNECTED,
  encodeClientLogin,
  encodePing,
  encodePong,
  encodeSendPacket,
  forEachBatchPacket,
  FEATURE_MESH,
  FEATURE_ROSTER_DELTA,
  FRAME_PUBLISH,
  encodeSubscribe,
} from '../wire/relay.js';
import { RosterAssembler, rosterParts } from '../wire/roster-parts.js';
import { MAX_ROSTER_BYTES } from '../mesh/roster.js';

export const RELAY_BACKOFF_MIN_MS = 250;
/** Capped low: a relay that restarts should be rejoined within seconds, not minutes. */
export const RELAY_BACKOFF_MAX_MS = 8_000;
export const RELAY_PING_INTERVAL_MS = 5_000;
export const RELAY_DEAD_AFTER_MS = 12_000;
export const RELAY_CONNECT_TIMEOUT_MS = 10_000;
/** Packets waiting in the socket beyond this are dropped rather than queued (bounded memory). */
export const RELAY_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/**
 * Largest frame we build, whatever larger limit a relay announces (the relay's default limit).
 * A flush under load holds several TSO superpackets for one peer; one 256 KiB frame for them cost
 * the three processes 40 % fewer messages and writes than 64 KiB frames (docs/performance.md).
 */
export const RELAY_MAX_BATCH_BYTES = 256 * 1024;

/**
 * Frames from this client carry an all-zero WebSocket mask, which ws then skips applying (a byte-wise
 * XOR of every frame, ~10 % of a core at 1 Gbit/s in JavaScript). RFC 6455 masks client frames so
 * that a script cannot put chosen bytes on the wire for a confused intercepting proxy; everything a
 * meshd client sends is ciphertext, keys and lengths, and over wss:// no intermediary sees it at all.
 */
const zeroMask = (mask: Buffer): void => {
  mask.fill(0);
};

export type RelayState = 'connecting' | 'connected' | 'backoff' | 'stopped';

export interface RelayClientEvents {
  /** A packet from `src` (views into the message; all packets of one message share `src`). */
  onPacket(src: Uint8Array, packet: Uint8Array, relay: RelayClient): void;
  /** The packets of one relay message were delivered: the moment to flush what they caused. */
  onBatchEnd?(relay: RelayClient): void;
  /** The relay says `key` is not connected to it (`disconnected`: it just left). */
  onPeerGone?(key: Uint8Array, disconnected: boolean, relay: RelayClient): void;
  /** A key we sent to (while it was away, or before it left) has logged in to this relay. */
  onPeerPresent?(key: Uint8Array, relay: RelayClient): void;
  onStateChange?(relay: RelayClient): void;
  /** A whole signed roster arrived (subscribed mesh; not checked yet: the receiver checks it). */
  onRoster?(meshKey: Uint8Array, signed: Uint8Array, relay: RelayClient): void;
  /** A line delta from the roster we hold (src/mesh/delta.ts; the receiver applies and checks it). */
  onRosterDelta?(meshKey: Uint8Array, delta: Uint8Array, relay: RelayClient): void;
  /** A roster (or delta) from the relay was dropped while being assembled (too big, parts out of order). */
  onRosterRefused?(reason: 'roster-oversized' | 'roster-out-of-order', relay: RelayClient): void;
  /** The serial the relay holds for a mesh (answer to subscribe and to publish). */
  onRosterHeld?(meshKey: Uint8Array, serial: number, relay: RelayClient): void;
}

export class RelayClient {
  state: RelayState = 'connecting';
  lastError: string | null = null;
  latencyMs: number | null = null;
  /** Logins completed, and how many of them came after a lost connection (reconnects). */
  connects = 0;
  get reconnects(): number {
    return Math.max(0, this.connects - 1);
  }
  private ws: WebSocket | null = null;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private lastFrameMs = 0;
  private pingSentMs = 0;
  /** Builds send-batch frames; null until a relay that takes them (it says so in its welcome) is connected. */
  private writer: BatchWriter | null = null;
  /** The relay carries rosters (FEATURE_MESH in its welcome). */
  meshCapable = false;
  private maxFrameBytes = 0;
  private readonly rosterIn = new RosterAssembler(MAX_ROSTER_BYTES);
  private readonly deltaIn = new RosterAssembler(MAX_ROSTER_BYTES);

  constructor(
    readonly url: string,
    private readonly identity: () => StaticIdentity,
    private readonly ca: Buffer | undefined,
    private readonly events: RelayClientEvents,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.connect();
  }

  stop(): void {
    this.setState('stopped');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.ws?.terminate();
    this.ws = null;
  }

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Sends a packet to `dst` through this relay now; false when not connected or too backed up. */
  send(dst: Uint8Array, packet: Uint8Array): boolean {
    const ok = this.queue(dst, packet);
    this.flush();
    return ok;
  }

  /**
   * Queues a packet for `dst` (copied: the caller may reuse its buffer); `flush` sends what was
   * queued. False when not connected, or when the socket already holds RELAY_MAX_BUFFERED_BYTES
   * (the send queue is bounded in bytes; the caller counts the drop).
   */
  queue(dst: Uint8Array, packet: Uint8Array): boolean {
    const ws = this.ws;
    if (!ws || this.state !== 'connected') return false;
    const w = this.writer;
    if (ws.bufferedAmount + (w?.size ?? 0) > RELAY_MAX_BUFFERED_BYTES) return false;
    if (!w || packet.length > w.maxPacketLen) {
      this.flush();
      ws.send(encodeSendPacket(dst, packet));
      return true;
    }
    if (w.size > 0 && !w.fits(dst, packet.length)) this.flush();
    w.add(dst, packet);
    return true;
  }

  /** Asks the relay for a mesh's rosters (false: not connected, or the relay carries none). */
  subscribe(meshKey: Uint8Array, serial: number): boolean {
    if (!this.ws || !this.connected || !this.meshCapable) return false;
    this.ws.send(encodeSubscribe(meshKey, serial));
    return true;
  }

  /** Hands a signed roster to the relay, in parts within its frame limit. */
  publish(meshKey: Uint8Array, signed: Uint8Array): boolean {
    const ws = this.ws;
    if (!ws || !this.connected || !this.meshCapable) return false;
    this.flush();
    for (const part of rosterParts(FRAME_PUBLISH, meshKey, signed, this.maxFrameBytes)) ws.send(part);
    return true;
  }

  /** Sends the frame under construction, if any. */
  flush(): void {
    const w = this.writer;
    if (!w || w.size === 0) return;
    const frame = w.take();
    this.ws?.send(frame, () => w.recycle(frame));
  }

  private setState(s: RelayState): void {
    if (this.state === s) return;
    this.state = s;
    if (s === 'connected') this.connects++;
    this.events.onStateChange?.(this);
  }

  private connect(): void {
    if (this.state === 'stopped') return;
    this.setState('connecting');
    const ws = new WebSocket(this.url, {
      perMessageDeflate: false,
      ca: this.ca,
      handshakeTimeout: RELAY_CONNECT_TIMEOUT_MS,
      maxPayload: 1024 * 1024,
      generateMask: zeroMask,
    });
    this.ws = ws;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer) => this.onMessage(ws, data));
    ws.on('error', (err) => {
      this.lastError = err.message;
    });
    ws.on('close', (code, reason) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.writer = null;
      this.meshCapable = false;
      this.rosterIn.reset();
      this.deltaIn.reset();
      if (this.pingTimer) clearInterval(this.pingTimer);
      const why = reason.length ? `${code} ${reason.toString()}` : (this.lastError ?? String(code));
      this.lastError = why;
      if (this.state === 'stopped') return;
      if (this.state === 'connected') this.log.warn({ component: 'relay', relay: this.url, reason: why }, 'relay connection lost');
      this.scheduleRetry();
    });
  }

  private scheduleRetry(): void {
    this.setState('backoff');
    const base = Math.min(RELAY_BACKOFF_MAX_MS, RELAY_BACKOFF_MIN_MS * 2 ** this.failures);
    this.failures++;
    const delay = base / 2 + Math.random() * (base / 2);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private onMessage(ws: WebSocket, data: Buffer): void {
    this.lastFrameMs = Date.now();
    const f = decodeRelayFrame(data);
    switch (f.type) {
      case 'server-hello': {
        if (f.version !== RELAY_PROTOCOL_VERSION) {
          ws.close(4000, `unsupported relay protocol version ${f.version}`);
          return;
        }
        const id = this.identity();
        const nonce = new Uint8Array(randomBytes(LOGIN_NONCE_LEN));
        const sealed = sealLoginProof(id.privateKey, id.publicKey, f.serverKey, f.challenge, nonce);
        if (!sealed) {
          ws.close(4000, 'relay key is not usable');
          return;
        }
        ws.send(encodeClientLogin(id.publicKey, nonce, sealed, FEATURE_BATCH | (this.events.onRosterDelta ? FEATURE_ROSTER_DELTA : 0)));
        return;
      }
      case 'server-welcome':
        this.writer = f.features & FEATURE_BATCH ? new BatchWriter(FRAME_SEND_BATCH, Math.min(RELAY_MAX_BATCH_BYTES, f.maxFrameBytes)) : null;
        this.meshCapable = (f.features & FEATURE_MESH) !== 0;
        this.maxFrameBytes = f.maxFrameBytes;
        this.failures = 0;
        this.lastError = null;
        this.setState('connected');
        this.log.info({ component: 'relay', relay: this.url }, 'relay connected');
        this.startPings(ws);
        return;
      case 'recv-packet':
        this.events.onPacket(f.key, f.packet, this);
        this.events.onBatchEnd?.(this);
        return;
      case 'recv-batch': {
        const src = f.key;
        forEachBatchPacket(f.body, (p) => this.events.onPacket(src, p, this));
        this.events.onBatchEnd?.(this);
        return;
      }
      case 'peer-gone':
        this.events.onPeerGone?.(f.key, f.reason === PEER_GONE_DISCONNECTED, this);
        return;
      case 'peer-present':
        this.events.onPeerPresent?.(f.key, this);
        return;
      case 'ping':
        ws.send(encodePong(f.data));
        return;
      case 'pong':
        if (this.pingSentMs) this.latencyMs = Date.now() - this.pingSentMs;
        return;
      case 'roster': {
        const r = this.rosterIn.add(f.meshKey, f.total, f.offset, f.bytes);
        if (r.kind === 'done') this.events.onRoster?.(f.meshKey, r.bytes, this);
        else if (r.kind === 'refused') this.events.onRosterRefused?.(r.reason, this);
        return;
      }
      case 'roster-delta': {
        const r = this.deltaIn.add(f.meshKey, f.total, f.offset, f.bytes);
        if (r.kind === 'done') this.events.onRosterDelta?.(f.meshKey, r.bytes, this);
        else if (r.kind === 'refused') this.events.onRosterRefused?.(r.reason, this);
        return;
      }
      case 'roster-held':
        this.events.onRosterHeld?.(f.meshKey, f.serial, this);
        return;
      case 'notice':
        this.log.info({ component: 'relay', relay: this.url, code: f.code }, `relay notice: ${f.text}`);
        return;
      case 'keepalive':
        return;
      default:
        // Unknown or malformed frames from the relay are ignored: a newer relay may send more.
        return;
    }
  }

  private startPings(ws: WebSocket): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    const ping = () => {
      if (Date.now() - this.lastFrameMs > RELAY_DEAD_AFTER_MS) {
        this.lastError = 'no answer from the relay';
        ws.terminate();
        return;
      }
      this.pingSentMs = Date.now();
      ws.send(encodePing(new Uint8Array(randomBytes(PING_LEN))));
    };
    ping();
    this.pingTimer = setInterval(ping, RELAY_PING_INTERVAL_MS);
  }
}
