// Protocol constants with the whitepaper's names (§6.1), units in the names.
import { hash } from '../crypto/blake2s.js';

const enc = new TextEncoder();
export const CONSTRUCTION = enc.encode('Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s');
export const IDENTIFIER = enc.encode('WireGuard v1 zx2c4 Jason@zx2c4.com');
export const LABEL_MAC1 = enc.encode('mac1----');
export const LABEL_COOKIE = enc.encode('cookie--');

/** C0 = HASH(CONSTRUCTION); H0 = HASH(C0 || IDENTIFIER). */
export const INITIAL_CHAIN_KEY = hash(CONSTRUCTION);
export const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, IDENTIFIER);

export const REKEY_AFTER_MESSAGES = 2 ** 60;
/**
 * The paper's limit is 2^64 - 2^13 - 1. Counters here are JS numbers, exact below 2^53;
 * no key can send 2^53 messages before REJECT_AFTER_TIME, so the tighter bound is unobservable.
 */
export const REJECT_AFTER_MESSAGES = Number.MAX_SAFE_INTEGER;

export interface TimerConfig {
  rekeyAfterTimeMs: number;
  rejectAfterTimeMs: number;
  rekeyAttemptTimeMs: number;
  rekeyTimeoutMs: number;
  /** Upper bound of the random jitter added to each handshake retry. */
  rekeyTimeoutJitterMaxMs: number;
  keepaliveTimeoutMs: number;
  cookieRefreshTimeMs: number;
}

export const DEFAULT_TIMERS: Readonly<TimerConfig> = Object.freeze({
  rekeyAfterTimeMs: 120_000,
  rejectAfterTimeMs: 180_000,
  rekeyAttemptTimeMs: 90_000,
  rekeyTimeoutMs: 5_000,
  rekeyTimeoutJitterMaxMs: 334,
  keepaliveTimeoutMs: 10_000,
  cookieRefreshTimeMs: 120_000,
});

/** At most one initiation is consumed per peer per 20 ms (50/s), as wireguard-go does. */
export const HANDSHAKE_INITIATION_RATE_MS = 20;
/** Packets held per peer while a handshake is under way; the oldest is dropped first. */
export const MAX_STAGED_PACKETS = 128;
