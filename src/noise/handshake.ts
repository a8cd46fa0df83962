// Noise_IKpsk2 as WireGuard uses it (whitepaper §5.4.2–5.4.5), split the paper's way:
// createInitiation / consumeInitiation / createResponse / consumeResponse / deriveKeys.
// No I/O: randomness and time come in as arguments; macs are added by CookieGenerator.
import { copyBytes } from '../wire/bytes.js';
import { hash, kdf1, kdf2, kdf3 } from '../crypto/blake2s.js';
import { openZero, sealZero } from '../crypto/aead.js';
import { dh, dhPublic } from '../crypto/x25519.js';
import { clamp, constantTimeEqual, type NodePublicKey, type NodePrivateKey } from '../crypto/keys.js';
import { compareTai64n, tai64n, TAI64N_LEN } from '../wire/tai64n.js';
import {
  ENCRYPTED_NOTHING_LEN,
  ENCRYPTED_STATIC_LEN,
  ENCRYPTED_TIMESTAMP_LEN,
  INITIATION_SIZE,
  MSG_INITIATION,
  MSG_RESPONSE,
  OFF_INIT_EPHEMERAL,
  OFF_INIT_STATIC,
  OFF_INIT_TIMESTAMP,
  OFF_RECEIVER,
  OFF_RESP_EMPTY,
  OFF_RESP_EPHEMERAL,
  OFF_SENDER,
  RESPONSE_SIZE,
  readU32,
  writeHeader,
  writeU32,
} from '../wire/wireguard.js';
import { HANDSHAKE_INITIATION_RATE_MS, INITIAL_CHAIN_KEY, INITIAL_HASH } from './constants.js';
import type { Rng } from './cookie.js';

export interface StaticIdentity {
  readonly privateKey: NodePrivateKey;
  readonly publicKey: NodePublicKey;
}

export type HandshakeStage = 'zeroed' | 'initiation-created' | 'initiation-consumed' | 'response-created' | 'response-consumed';

const ZERO32 = new Uint8Array(32);
const EMPTY = new Uint8Array(0);

/** Per-peer handshake state (one in flight at a time, as in wireguard-go). */
export class Handshake {
  stage: HandshakeStage = 'zeroed';
  hash: Uint8Array = new Uint8Array(32);
  chainKey: Uint8Array = new Uint8Array(32);
  localEphemeral: Uint8Array = new Uint8Array(32);
  remoteEphemeral: Uint8Array = new Uint8Array(32);
  localIndex = 0;
  remoteIndex = 0;
  /** Largest TAI64N accepted from this peer; a replayed initiation carries one no larger. */
  lastTimestamp: Uint8Array = new Uint8Array(TAI64N_LEN);
  lastInitiationConsumedMs = -Infinity;
  presharedKey: Uint8Array;
  /** undefined: not computed yet (see precomputedStaticStatic). */
  private staticStatic: Uint8Array | null | undefined = undefined;

  constructor(
    private identity: StaticIdentity,
    readonly remoteStatic: NodePublicKey,
    psk: Uint8Array | null,
  ) {
    this.presharedKey = psk ?? ZERO32;
  }

  /**
   * DH(local static, remote static), computed once per key pair on the first handshake, not when the
   * peer is added (a 10,000-member roster would otherwise spend ~0.6 s in X25519 before any packet);
   * null if the peer's key is low-order.
   */
  get precomputedStaticStatic(): Uint8Array | null {
    if (this.staticStatic === undefined) this.staticStatic = dh(this.identity.privateKey, this.remoteStatic);
    return this.staticStatic;
  }

  /** Recomputes what depends on the local private key (after `wg set private-key`). */
  rekeyLocal(identity: StaticIdentity): void {
    this.identity = identity;
    this.staticStatic = undefined;
    this.clear();
  }

  clear(): void {
    this.stage = 'zeroed';
    this.hash.fill(0);
    this.chainKey.fill(0);
    this.localEphemeral.fill(0);
    this.remoteEphemeral.fill(0);
    this.localIndex = 0;
    this.remoteIndex = 0;
  }
}

function mixHash(h: Uint8Array, data: Uint8Array): Uint8Array {
  return hash(h, data);
}

/** Writes a 148-byte initiation (macs left zero) and moves `hs` to 'initiation-created'. */
export function createInitiation(
  identity: StaticIdentity,
  hs: Handshake,
  localIndex: number,
  wallMs: number,
  rng: Rng,
): Uint8Array | null {
  if (!hs.precomputedStaticStatic) return null;
  const msg = new Uint8Array(INITIATION_SIZE);
  writeHeader(msg, MSG_INITIATION);
  writeU32(msg, OFF_SENDER, localIndex);

  let c = INITIAL_CHAIN_KEY;
  let h = mixHash(INITIAL_HASH, hs.remoteStatic);
  const ephemeral = clamp(rng(32));
  const ephemeralPub = dhPublic(ephemeral);
  c = kdf1(c, ephemeralPub);
  msg.set(ephemeralPub, OFF_INIT_EPHEMERAL);
  h = mixHash(h, ephemeralPub);

  const es = dh(ephemeral, hs.remoteStatic);
  if (!es) return null;
  let k: Uint8Array;
  [c, k] = kdf2(c, es);
  const encStatic = sealZero(k, identity.publicKey, h);
  msg.set(encStatic, OFF_INIT_STATIC);
  h = mixHash(h, encStatic);

  [c, k] = kdf2(c, hs.precomputedStaticStatic);
  const encTimestamp = sealZero(k, tai64n(wallMs), h);
  msg.set(encTimestamp, OFF_INIT_TIMESTAMP);
  h = mixHash(h, encTimestamp);

  hs.chainKey = c;
  hs.hash = h;
  hs.localEphemeral = ephemeral;
  hs.localIndex = localIndex;
  hs.stage = 'initiation-created';
  return msg;
}

/**
 * Our own initiation in flight, set aside while we answer the peer's initiation that crossed it.
 * wireguard-go keeps one handshake per peer, so answering overwrites its own initiation: the
 * peer's response to it is then refused, neither side may send on its responder session, and both
 * wait for the 5 s retry. Keeping ours lets its response still complete (docs/architecture.md).
 */
export interface PendingInitiation {
  chainKey: Uint8Array;
  hash: Uint8Array;
  localEphemeral: Uint8Array;
  localIndex: number;
}

/** A copy of `hs`'s initiator state if an initiation of ours awaits its response, else null. */
export function savePendingInitiation(hs: Handshake): PendingInitiation | null {
  if (hs.stage !== 'initiation-created') return null;
  return { chainKey: hs.chainKey.slice(), hash: hs.hash.slice(), localEphemeral: hs.localEphemeral.slice(), localIndex: hs.localIndex };
}

/** Puts a saved initiation back (after the responder session was derived, which wiped `hs`). */
export function restorePendingInitiation(hs: Handshake, p: PendingInitiation): void {
  hs.chainKey = p.chainKey;
  hs.hash = p.hash;
  hs.localEphemeral = p.localEphemeral;
  hs.localIndex = p.localIndex;
  hs.remoteIndex = 0;
  hs.remoteEphemeral = new Uint8Array(32);
  hs.stage = 'initiation-created';
}

export type ConsumeInitiationResult<P> =
  | { ok: true; peer: P; hs: Handshake }
  | { ok: false; reason: 'handshake-decrypt' | 'unknown-peer' | 'replayed-timestamp' | 'initiation-flood' };

/**
 * Opens an initiation (mac1 already checked). `lookup` maps the sender's static key to its peer.
 * On success the peer's handshake holds the state for createResponse.
 */
export function consumeInitiation<P>(
  identity: StaticIdentity,
  msg: Uint8Array,
  lookup: (remoteStatic: Uint8Array) => { peer: P; hs: Handshake } | undefined,
  nowMs: number,
): ConsumeInitiationResult<P> {
  let c = INITIAL_CHAIN_KEY;
  let h = mixHash(INITIAL_HASH, identity.publicKey);
  const ephemeral = copyBytes(msg, OFF_INIT_EPHEMERAL, OFF_INIT_EPHEMERAL + 32);
  c = kdf1(c, ephemeral);
  h = mixHash(h, ephemeral);

  const es = dh(identity.privateKey, ephemeral);
  if (!es) return { ok: false, reason: 'handshake-decrypt' };
  let k: Uint8Array;
  [c, k] = kdf2(c, es);
  const encStatic = msg.subarray(OFF_INIT_STATIC, OFF_INIT_STATIC + ENCRYPTED_STATIC_LEN);
  const remoteStatic = openZero(k, encStatic, h);
  if (!remoteStatic) return { ok: false, reason: 'handshake-decrypt' };
  h = mixHash(h, encStatic);

  const found = lookup(remoteStatic);
  if (!found) return { ok: false, reason: 'unknown-peer' };
  const { hs } = found;
  if (!hs.precomputedStaticStatic) return { ok: false, reason: 'handshake-decrypt' };

  [c, k] = kdf2(c, hs.precomputedStaticStatic);
  const encTimestamp = msg.subarray(OFF_INIT_TIMESTAMP, OFF_INIT_TIMESTAMP + ENCRYPTED_TIMESTAMP_LEN);
  const timestamp = openZero(k, encTimestamp, h);
  if (!timestamp) return { ok: false, reason: 'handshake-decrypt' };
  h = mixHash(h, encTimestamp);

  if (compareTai64n(timestamp, hs.lastTimestamp) <= 0) return { ok: false, reason: 'replayed-timestamp' };
  if (nowMs - hs.lastInitiationConsumedMs < HANDSHAKE_INITIATION_RATE_MS) return { ok: false, reason: 'initiation-flood' };

  hs.lastTimestamp = timestamp;
  hs.lastInitiationConsumedMs = nowMs;
  hs.hash = h;
  hs.chainKey = c;
  hs.remoteIndex = readU32(msg, OFF_SENDER);
  hs.remoteEphemeral = ephemeral;
  hs.stage = 'initiation-consumed';
  return { ok: true, peer: found.peer, hs };
}

/** Writes a 92-byte response (macs left zero) to the initiation `hs` consumed. */
export function createResponse(hs: Handshake, localIndex: number, rng: Rng): Uint8Array | null {
  if (hs.stage !== 'initiation-consumed') return null;
  const msg = new Uint8Array(RESPONSE_SIZE);
  writeHeader(msg, MSG_RESPONSE);
  writeU32(msg, OFF_SENDER, localIndex);
  writeU32(msg, OFF_RECEIVER, hs.remoteIndex);

  const ephemeral = clamp(rng(32));
  const ephemeralPub = dhPublic(ephemeral);
  msg.set(ephemeralPub, OFF_RESP_EPHEMERAL);
  let c = kdf1(hs.chainKey, ephemeralPub);
  let h = mixHash(hs.hash, ephemeralPub);
  const ee = dh(ephemeral, hs.remoteEphemeral);
  const se = dh(ephemeral, hs.remoteStatic);
  if (!ee || !se) return null;
  c = kdf1(c, ee);
  c = kdf1(c, se);
  const [c2, tau, k] = kdf3(c, hs.presharedKey);
  c = c2;
  h = mixHash(h, tau);
  const encNothing = sealZero(k, EMPTY, h);
  msg.set(encNothing, OFF_RESP_EMPTY);
  h = mixHash(h, encNothing);
  ephemeral.fill(0);

  hs.chainKey = c;
  hs.hash = h;
  hs.localIndex = localIndex;
  hs.stage = 'response-created';
  return msg;
}

export type ConsumeResponseResult<P> = { ok: true; peer: P; hs: Handshake } | { ok: false; reason: 'unknown-receiver' | 'handshake-decrypt' };

/** Opens a response (mac1 already checked); `lookup` maps our index to the handshake awaiting it. */
export function consumeResponse<P>(
  identity: StaticIdentity,
  msg: Uint8Array,
  lookup: (localIndex: number) => { peer: P; hs: Handshake } | undefined,
): ConsumeResponseResult<P> {
  const found = lookup(readU32(msg, OFF_RECEIVER));
  if (!found || found.hs.stage !== 'initiation-created') return { ok: false, reason: 'unknown-receiver' };
  const { hs } = found;
  const ephemeral = copyBytes(msg, OFF_RESP_EPHEMERAL, OFF_RESP_EPHEMERAL + 32);
  let c = kdf1(hs.chainKey, ephemeral);
  let h = mixHash(hs.hash, ephemeral);
  const ee = dh(hs.localEphemeral, ephemeral);
  const se = dh(identity.privateKey, ephemeral);
  if (!ee || !se) return { ok: false, reason: 'handshake-decrypt' };
  c = kdf1(c, ee);
  c = kdf1(c, se);
  const [c2, tau, k] = kdf3(c, hs.presharedKey);
  c = c2;
  h = mixHash(h, tau);
  const encNothing = msg.subarray(OFF_RESP_EMPTY, OFF_RESP_EMPTY + ENCRYPTED_NOTHING_LEN);
  if (!openZero(k, encNothing, h)) return { ok: false, reason: 'handshake-decrypt' };
  h = mixHash(h, encNothing);

  hs.chainKey = c;
  hs.hash = h;
  hs.remoteIndex = readU32(msg, OFF_SENDER);
  hs.stage = 'response-consumed';
  hs.localEphemeral.fill(0);
  return { ok: true, peer: found.peer, hs };
}

export interface SessionKeys {
  sendKey: Uint8Array;
  recvKey: Uint8Array;
  isInitiator: boolean;
  localIndex: number;
  remoteIndex: number;
}

/** (T_send, T_recv) = KDF2(C, ε), swapped for the responder; wipes the handshake. */
export function deriveKeys(hs: Handshake): SessionKeys | null {
  let isInitiator: boolean;
  if (hs.stage === 'response-consumed') isInitiator = true;
  else if (hs.stage === 'response-created') isInitiator = false;
  else return null;
  const [t1, t2] = kdf2(hs.chainKey, EMPTY);
  const keys: SessionKeys = {
    sendKey: isInitiator ? t1 : t2,
    recvKey: isInitiator ? t2 : t1,
    isInitiator,
    localIndex: hs.localIndex,
    remoteIndex: hs.remoteIndex,
  };
  hs.clear();
  return keys;
}

export function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return constantTimeEqual(a, b);
}
