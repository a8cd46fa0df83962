// A configured peer: its keys, handshake, sessions, timer deadlines, endpoint and counters.
import { keyId, type NodePublicKey } from '../crypto/keys.js';
import { CookieGenerator } from '../noise/cookie.js';
import { Handshake, type StaticIdentity } from '../noise/handshake.js';
import { Keypairs } from '../noise/keypair.js';
import type { TimerConfig } from '../noise/constants.js';
import type { Endpoint } from './endpoint.js';
import { objectArray } from './clear-array.js';

/** Deadlines in the device clock's milliseconds; Infinity means "not pending". */
export interface PeerTimers {
  retransmitHandshakeAt: number;
  /** An early re-send of the initiation in flight, set when the peer became reachable (Device.handshakeSoon). */
  resendHandshakeAt: number;
  sendKeepaliveAt: number;
  newHandshakeAt: number;
  zeroKeyMaterialAt: number;
  persistentKeepaliveAt: number;
  handshakeAttempts: number;
  needAnotherKeepalive: boolean;
  sentLastMinuteHandshake: boolean;
  lastSentHandshakeMs: number;
}

export interface PeerOptions {
  publicKey: NodePublicKey;
  presharedKey?: Uint8Array | null;
  endpoint?: Endpoint | null;
  persistentKeepaliveSec?: number;
  name?: string;
}

export class Peer {
  readonly id: string;
  readonly publicKey: NodePublicKey;
  name: string | undefined;
  endpoint: Endpoint | null;
  persistentKeepaliveSec: number;
  readonly handshake: Handshake;
  readonly cookies: CookieGenerator;
  readonly keypairs = new Keypairs();
  readonly timers: PeerTimers = {
    retransmitHandshakeAt: Infinity,
    resendHandshakeAt: Infinity,
    sendKeepaliveAt: Infinity,
    newHandshakeAt: Infinity,
    zeroKeyMaterialAt: Infinity,
    persistentKeepaliveAt: Infinity,
    handshakeAttempts: 0,
    needAnotherKeepalive: false,
    sentLastMinuteHandshake: false,
    lastSentHandshakeMs: -Infinity,
  };
  /** Packets from the TUN waiting for a session. */
  staged: Uint8Array[] = objectArray();
  rxBytes = 0;
  txBytes = 0;
  /** Device-clock ms of the latest authenticated packet that came straight over UDP / via a relay. */
  lastDirectRxMs = 0;
  lastRelayRxMs = 0;
  /** Device-clock ms of the latest data packet sent or received (not keepalives, not disco). */
  lastDataMs = -Infinity;
  /**
   * The largest packet from the TUN sent to this peer now (0: the device's MTU). Larger ones are
   * answered with ICMP "too big" (or fragmented, IPv4 without DF) by inside.ts. The daemon sets it
   * from the peer's probed path MTU (transport/path-mtu.ts) and the path in use.
   */
  mtu = 0;
  /** The MTU of the peer's direct path, as probed (0: not limited; Device.addPeer sets the default). */
  pathMtu = 0;
  /** Device-clock ms of the latest "too big" answer written for this peer (they are rate-limited). */
  tooBigAtMs = -Infinity;
  /** Listed in Device.woken, not yet taken (Device.noteWake). */
  wakeNoted = false;
  /** Wall-clock ms of the latest completed handshake, 0 if none. */
  lastHandshakeWallMs = 0;

  constructor(identity: StaticIdentity, opts: PeerOptions, timers: TimerConfig) {
    this.publicKey = opts.publicKey;
    this.id = keyId(opts.publicKey);
    this.name = opts.name;
    this.endpoint = opts.endpoint ?? null;
    this.persistentKeepaliveSec = opts.persistentKeepaliveSec ?? 0;
    this.handshake = new Handshake(identity, opts.publicKey, opts.presharedKey ?? null);
    this.cookies = new CookieGenerator(opts.publicKey, timers.cookieRefreshTimeMs);
  }

  get presharedKey(): Uint8Array {
    return this.handshake.presharedKey;
  }

  setPresharedKey(psk: Uint8Array | null): void {
    this.handshake.presharedKey = psk ?? new Uint8Array(32);
  }
}
