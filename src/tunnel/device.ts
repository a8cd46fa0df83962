// The sans-IO WireGuard device: peers, sessions, cryptokey routing and timers.
// Callers feed it packets and ticks; it fills `out` with what to send and what to write.
import { keyId, publicKeyOf, type NodePrivateKey, type NodePublicKey } from '../crypto/keys.js';
import type { TransportAead } from '../crypto/transport-aead.js';
import { CookieChecker, type Rng } from '../noise/cookie.js';
import { DEFAULT_TIMERS, type TimerConfig } from '../noise/constants.js';
import type { StaticIdentity } from '../noise/handshake.js';
import type { Keypair } from '../noise/keypair.js';
import { RateLimiter } from '../noise/rate-limiter.js';
import { AllowedIps } from './allowed-ips.js';
import type { Cidr } from './cidr.js';
import { DropCounters, INSIDE_DROP_REASONS, OUTSIDE_DROP_REASONS, type InsideDropReason, type OutsideDropReason } from './drops.js';
import { Outbox } from './outbox.js';
import { Peer, type PeerOptions } from './peer.js';
import { insideBatch, insidePacket, sendHandshakeInitiation, sendKeepalive, sendStaged } from './inside.js';
import { outsideBatch, outsideDatagram } from './outside.js';
import { earliestDeadline, tickPeer } from './timers.js';
import { arm } from './timer-hooks.js';
import type { Endpoint } from './endpoint.js';
import { objectArray } from './clear-array.js';

export interface Clock {
  /** Monotonic milliseconds, for timers. */
  now(): number;
  /** Wall-clock milliseconds since the Unix epoch, for TAI64N and "latest handshake". */
  wall(): number;
}

export interface DeviceOptions {
  privateKey: NodePrivateKey;
  clock: Clock;
  rng: Rng;
  aead: TransportAead;
  mtu: number;
  timers?: Partial<TimerConfig>;
  /** Handshake messages per second above which mac2 (cookies) are demanded. */
  underLoadHandshakesPerSecond?: number;
  /**
   * Seal and open in the caller's buffers instead of copying (the daemon's fast path). Then a
   * packet given to inside() must have TRANSPORT_HEADER_SIZE free bytes before it and
   * TRANSPORT_TAILROOM after it in its buffer (wire/wireguard.ts), a datagram given to outside() may be decrypted where
   * it lies, and what the Outbox holds may be views of those buffers: drain it before reusing them.
   */
  inPlace?: boolean;
}


/** Under load for this long after the rate last exceeded the threshold (as wireguard-go). */
export const UNDER_LOAD_AFTER_MS = 1000;
export const DEFAULT_UNDER_LOAD_HANDSHAKES_PER_SECOND = 256;
const NO_PEERS: readonly Peer[] = [];
/**
 * The least time between an initiation and its early re-send (handshakeSoon): more than the
 * responder's initiation-flood window (HANDSHAKE_INITIATION_RATE_MS, 20 ms), with room for the
 * two messages to be delivered at different speeds.
 */
export const RESEND_GRACE_MIN_MS = 60;
/** The longest the tick goes without looking at every peer (see tick). */
export const SAFETY_SCAN_MS = 5000;

export interface IndexEntry {
  peer: Peer;
  /** null while the index names a handshake in flight. */
  keypair: Keypair | null;
}

export class Device {
  identity: StaticIdentity;
  readonly clock: Clock;
  readonly rng: Rng;
  readonly aead: TransportAead;
  mtu: number;
  readonly inPlace: boolean;
  /**
   * The MTU a new peer's direct path starts with until it is probed (PMTU_SAFE when the daemon
   * probes path MTUs), 0 when paths are not limited below the device's MTU.
   */
  pathMtuDefault = 0;
  readonly timers: TimerConfig;
  readonly peers = new Map<string, Peer>();
  readonly allowedIps = new AllowedIps<Peer>();
  readonly index = new Map<number, IndexEntry>();
  readonly cookieChecker: CookieChecker;
  readonly rateLimiter = new RateLimiter();
  readonly outsideDrops = new DropCounters<OutsideDropReason>(OUTSIDE_DROP_REASONS);
  readonly insideDrops = new DropCounters<InsideDropReason>(INSIDE_DROP_REASONS);
  readonly out = new Outbox();
  /** Handshake messages that authenticated (the refused ones are drops, by reason). */
  readonly handshakeStats = { initiationsReceived: 0, responsesReceived: 0 };
  readonly underLoadThreshold: number;
  private underLoadUntilMs = -Infinity;
  private handshakeWindowStartMs = -Infinity;
  private handshakesInWindow = 0;
  private up = false;
  /** The earliest peer deadline (see tick); -Infinity until the first scan. */
  private nextDueMs = -Infinity;
  private lastScanMs = -Infinity;
  private urgentDueMs = Infinity;
  private woken: Peer[] = objectArray();
  /** Scratch for outsideBatch: plaintext lengths and counters of a batch's messages. */
  private batchPlain = new Int32Array(0);
  private batchCounters = new Float64Array(0);
  /** xorshift32 state for timer jitter, seeded once from rng: jitter needs no cryptographic randomness. */
  private jitterState = 0;

  constructor(opts: DeviceOptions) {
    this.identity = { privateKey: opts.privateKey, publicKey: publicKeyOf(opts.privateKey) };
    this.clock = opts.clock;
    this.rng = opts.rng;
    this.aead = opts.aead;
    this.mtu = opts.mtu;
    this.inPlace = opts.inPlace ?? false;
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.cookieChecker = new CookieChecker(this.identity.publicKey, this.timers.cookieRefreshTimeMs);
    this.underLoadThreshold = opts.underLoadHandshakesPerSecond ?? DEFAULT_UNDER_LOAD_HANDSHAKES_PER_SECOND;
  }

  get publicKey(): NodePublicKey {
    return this.identity.publicKey;
  }

  /** Starts timers that run without traffic (persistent keepalives). */
  start(): void {
    this.up = true;
    for (const p of this.peers.values()) if (p.persistentKeepaliveSec > 0) sendKeepalive(this, p);
  }

  /**
   * False while the interface has no private key (meshd-wireguard starts so, as wireguard-go does):
   * no handshake is sent, and the stand-in key (random, known to no one) answers none.
   */
  hasKey = true;

  /** Forgets the private key (a UAPI set of the all-zero key): sessions end, no handshakes until a new one. */
  clearPrivateKey(standIn: NodePrivateKey): void {
    this.setPrivateKey(standIn);
    this.hasKey = false;
  }

  setPrivateKey(priv: NodePrivateKey): void {
    this.hasKey = true;
    this.identity = { privateKey: priv, publicKey: publicKeyOf(priv) };
    this.cookieChecker.setLocalPublic(this.identity.publicKey);
    for (const p of [...this.peers.values()]) {
      // A peer whose key equals our own new public key cannot exist (wg(8) removes it).
      if (p.id === keyId(this.identity.publicKey)) {
        this.removePeer(p.id);
        continue;
      }
      this.clearSessions(p);
      p.handshake.rekeyLocal(this.identity);
    }
  }

  addPeer(opts: PeerOptions, allowedIps: readonly Cidr[] = []): Peer {
    const id = keyId(opts.publicKey);
    if (this.peers.has(id)) throw new Error(`peer ${id} already exists`);
    const peer = new Peer(this.identity, opts, this.timers);
    if (this.pathMtuDefault > 0) peer.pathMtu = peer.mtu = Math.min(this.pathMtuDefault, this.mtu);
    this.peers.set(id, peer);
    for (const c of allowedIps) this.allowedIps.insert(c, peer);
    if (this.up && peer.persistentKeepaliveSec > 0) sendKeepalive(this, peer);
    return peer;
  }

  removePeer(id: string): boolean {
    const peer = this.peers.get(id);
    if (!peer) return false;
    this.clearSessions(peer);
    this.allowedIps.removeValue(peer);
    this.peers.delete(id);
    peer.staged = objectArray();
    return true;
  }

  setPersistentKeepalive(peer: Peer, sec: number): void {
    peer.persistentKeepaliveSec = sec;
    if (sec > 0 && this.up) sendKeepalive(this, peer);
    else if (sec === 0) peer.timers.persistentKeepaliveAt = Infinity;
  }

  /**
   * A new endpoint (configured, or a direct path disco found): packets waiting for a session get a
   * handshake through it soon, not at the next 5 s retry. Not at once while an initiation may still
   * be answered (handshakeSoon): on a fresh start the first one is often on its way through the
   * relay when the pong comes, and a second inside the peer's initiation-flood window would be
   * refused while voiding the answer to the first: both sides would wait 5 s.
   */
  setEndpoint(peer: Peer, e: Endpoint | null): void {
    peer.endpoint = e;
    if (e && peer.staged.length > 0 && !peer.keypairs.current) this.handshakeSoon(peer, 0);
  }

  /**
   * A new way to reach peers appeared (a relay connected): peers with packets waiting for a
   * session retry their handshake soon (handshakeSoon) instead of at the next 5 s retry.
   */
  retryWaitingHandshakes(graceMs: number): void {
    for (const p of this.peers.values()) if (p.staged.length > 0 && !p.keypairs.current) this.handshakeSoon(p, graceMs);
  }

  /**
   * The peer just became reachable (a relay says it logged in, or a relay connected): handshake
   * soon, whenever the last initiation went, instead of at the next 5 s retry.
   *  - An initiation in flight may have been lost on the way to a peer that was not there yet, or
   *    may be answered any moment: it is re-sent only if no response came within `graceMs` of it
   *    (the caller's estimate of a round trip, at least RESEND_GRACE_MIN_MS). Re-sending at once
   *    would put two initiations within the peer's 20 ms initiation-flood window: the second
   *    would be refused, the answer to the first ignored, and both sides would wait 5 s.
   *  - Otherwise a fresh initiation goes now: a peer with a session that logs in again may be a
   *    restarted process that lost it, and our packets on it would vanish until
   *    KEEPALIVE + REKEY_TIMEOUT had passed. (A relay sends peer-present only to clients that
   *    sent to the peer, once per login of the peer.)
   */
  handshakeSoon(peer: Peer, graceMs: number): void {
    const t = peer.timers;
    if (t.retransmitHandshakeAt === Infinity) {
      this.handshakeNow(peer);
      return;
    }
    const at = t.lastSentHandshakeMs + Math.max(RESEND_GRACE_MIN_MS, graceMs);
    if (at <= this.clock.now()) this.handshakeNow(peer);
    else if (at < t.resendHandshakeAt) {
      t.resendHandshakeAt = arm(this, at);
      if (at < this.urgentDueMs) this.urgentDueMs = at;
    }
  }

  /** Sends the peer's initiation now, whenever the previous one went (a pending retry count is kept). */
  handshakeNow(peer: Peer): void {
    peer.timers.lastSentHandshakeMs = -Infinity;
    if (peer.staged.length > 0 && !peer.keypairs.current) sendStaged(this, peer);
    else sendHandshakeInitiation(this, peer, peer.timers.retransmitHandshakeAt !== Infinity);
  }

  /** Wipes every session and handshake of a peer and forgets their indices. */
  clearSessions(peer: Peer): void {
    for (const kp of peer.keypairs.clear()) this.unindexKeypair(kp);
    this.unindexHandshake(peer);
    peer.handshake.clear();
    const t = peer.timers;
    t.retransmitHandshakeAt = t.resendHandshakeAt = t.sendKeepaliveAt = t.newHandshakeAt = t.zeroKeyMaterialAt = Infinity;
    t.handshakeAttempts = 0;
  }

  /** A packet read from the TUN device. The buffer may be reused once this returns. */
  inside(packet: Uint8Array): void {
    insidePacket(this, packet);
  }

  /** A batch of packets read from the TUN, all in `buf` (see insideBatch). */
  insideBatch(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): void {
    insideBatch(this, buf, offsets, lengths, count);
  }

  /** A WireGuard datagram from the network. The buffer may be reused once this returns. */
  outside(datagram: Uint8Array, from: Endpoint): void {
    outsideDatagram(this, datagram, from);
  }

  /**
   * A batch of datagrams in one buffer (datagram i at offsets[i], lengths[i] long, from from[i]);
   * with inPlace, transport messages are opened where they lie (see outsideBatch).
   */
  outsideBatch(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, from: readonly Endpoint[], count: number): void {
    if (this.batchPlain.length < count) {
      this.batchPlain = new Int32Array(count);
      this.batchCounters = new Float64Array(count);
    }
    outsideBatch(this, buf, offsets, lengths, from, count, this.batchPlain, this.batchCounters);
  }

  /** Runs due timers; call about every 100–250 ms. */
  /**
   * Acts on the deadlines that have passed. The peers are scanned only once the earliest deadline
   * (tracked by due()) has come, so idle peers cost nothing per tick.
   */
  tick(): void {
    const now = this.clock.now();
    // A full scan at least every SAFETY_SCAN_MS too, so a deadline set without arm() is late, not lost.
    if (now < this.nextDueMs && now - this.lastScanMs < SAFETY_SCAN_MS) return;
    this.lastScanMs = now;
    this.nextDueMs = Infinity; // deadlines armed during the scan lower it again through due()
    this.urgentDueMs = Infinity;
    let next = Infinity;
    let urgent = Infinity;
    for (const p of this.peers.values()) {
      tickPeer(this, p, now);
      const at = earliestDeadline(p);
      if (at < next) next = at;
      if (p.timers.resendHandshakeAt < urgent) urgent = p.timers.resendHandshakeAt;
    }
    if (next < this.nextDueMs) this.nextDueMs = next;
    if (urgent < this.urgentDueMs) this.urgentDueMs = urgent;
  }

  /**
   * The earliest early handshake re-send (handshakeSoon), Infinity if none. Unlike the other
   * deadlines, which tolerate the tick's quantum (boringtun ticks every 250 ms), this one is a
   * packet waiting: the caller's tick should come at that moment.
   */
  nextUrgentMs(): number {
    return this.urgentDueMs;
  }

  /** A peer deadline was set to `at` (timer-hooks.arm): the next tick must not sleep past it. */
  due(at: number): void {
    if (at < this.nextDueMs) this.nextDueMs = at;
  }

  /**
   * The peer has traffic after being idle, or packets waiting for a session: path discovery should
   * look at it now rather than at its next full scan. Each peer is listed once until taken.
   */
  noteWake(peer: Peer): void {
    if (peer.wakeNoted) return;
    peer.wakeNoted = true;
    this.woken.push(peer);
  }

  /** Whether noteWake listed a peer that takeWoken has not taken yet. */
  hasWoken(): boolean {
    return this.woken.length > 0;
  }

  /** The earliest peer deadline known (Infinity: none; -Infinity: the next tick scans anyway). */
  nextDeadlineMs(): number {
    return this.nextDueMs;
  }

  /** The peers noted by noteWake since the last call. */
  takeWoken(): readonly Peer[] {
    if (this.woken.length === 0) return NO_PEERS;
    const w = this.woken;
    this.woken = objectArray();
    for (const p of w) p.wakeNoted = false;
    return w;
  }

  // ---- helpers shared by inside/outside/timers ----

  allocateIndex(entry: IndexEntry): number {
    for (;;) {
      const b = this.rng(4);
      const idx = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) >>> 0;
      if (!this.index.has(idx)) {
        this.index.set(idx, entry);
        return idx;
      }
    }
  }

  unindexKeypair(kp: Keypair): void {
    const e = this.index.get(kp.localIndex);
    if (e && e.keypair === kp) this.index.delete(kp.localIndex);
    kp.wipe();
  }

  unindexHandshake(peer: Peer): void {
    const idx = peer.handshake.localIndex;
    const e = this.index.get(idx);
    if (e && e.peer === peer && e.keypair === null) this.index.delete(idx);
  }

  /** Counts a handshake message and says whether the device is under load (cookies required). */
  noteHandshakeAndCheckLoad(now: number): boolean {
    if (now - this.handshakeWindowStartMs >= 1000) {
      this.handshakeWindowStartMs = now;
      this.handshakesInWindow = 0;
    }
    this.handshakesInWindow++;
    if (this.handshakesInWindow > this.underLoadThreshold) this.underLoadUntilMs = now + UNDER_LOAD_AFTER_MS;
    return now < this.underLoadUntilMs;
  }

  /**
   * Up to REKEY_TIMEOUT_JITTER_MAX of jitter for handshake timers. Called for every data packet
   * sent without a reply yet, so it must not cost a system call (crypto randomness does): a
   * xorshift32 seeded once from rng, as wireguard-go uses its runtime's fast random here.
   */
  jitterMs(): number {
    if (this.jitterState === 0) {
      const b = this.rng(4);
      this.jitterState = (b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)) || 0x9e3779b9;
    }
    let x = this.jitterState;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.jitterState = x;
    return (x >>> 0) % (this.timers.rekeyTimeoutJitterMaxMs + 1);
  }
}
