// RelayClient: one logged-in WebSocket to a meshd-relay, kept up with exponential backoff and
// jitter. Sends packets to public keys; delivers packets from them. A dead relay is noticed by a
// closed socket at once, or by silence (no frame for RELAY_DEAD_AFTER_MS despite pings).
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
  encodeClientLogin,
  encodePing,
  encodePong,
  encodeSendPacket,
} from '../wire/relay.js';

export const RELAY_BACKOFF_MIN_MS = 250;
/** Capped low: a relay that restarts should be rejoined within seconds, not minutes. */
export const RELAY_BACKOFF_MAX_MS = 8_000;
export const RELAY_PING_INTERVAL_MS = 5_000;
export const RELAY_DEAD_AFTER_MS = 12_000;
export const RELAY_CONNECT_TIMEOUT_MS = 10_000;
/** Packets waiting in the socket beyond this are dropped rather than queued (bounded memory). */
export const RELAY_MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export type RelayState = 'connecting' | 'connected' | 'backoff' | 'stopped';

export interface RelayClientEvents {
  onPacket(src: Uint8Array, packet: Uint8Array, relay: RelayClient): void;
  onPeerGone(key: Uint8Array, relay: RelayClient): void;
  onStateChange(relay: RelayClient): void;
}

export class RelayClient {
  state: RelayState = 'connecting';
  lastError: string | null = null;
  latencyMs: number | null = null;
  private ws: WebSocket | null = null;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private lastFrameMs = 0;
  private pingSentMs = 0;

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

  /** Sends a packet to `dst` through this relay; false when not connected or too backed up. */
  send(dst: Uint8Array, packet: Uint8Array): boolean {
    const ws = this.ws;
    if (!ws || this.state !== 'connected' || ws.bufferedAmount > RELAY_MAX_BUFFERED_BYTES) return false;
    ws.send(encodeSendPacket(dst, packet));
    return true;
  }

  private setState(s: RelayState): void {
    if (this.state === s) return;
    this.state = s;
    this.events.onStateChange(this);
  }

  private connect(): void {
    if (this.state === 'stopped') return;
    this.setState('connecting');
    const ws = new WebSocket(this.url, {
      perMessageDeflate: false,
      ca: this.ca,
      handshakeTimeout: RELAY_CONNECT_TIMEOUT_MS,
      maxPayload: 1024 * 1024,
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
        ws.send(encodeClientLogin(id.publicKey, nonce, sealed));
        return;
      }
      case 'server-welcome':
        this.failures = 0;
        this.lastError = null;
        this.setState('connected');
        this.log.info({ component: 'relay', relay: this.url }, 'relay connected');
        this.startPings(ws);
        return;
      case 'recv-packet':
        this.events.onPacket(f.key, f.packet, this);
        return;
      case 'peer-gone':
        this.events.onPeerGone(f.key, this);
        return;
      case 'ping':
        ws.send(encodePong(f.data));
        return;
      case 'pong':
        if (this.pingSentMs) this.latencyMs = Date.now() - this.pingSentMs;
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
