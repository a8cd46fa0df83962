// Which way a packet to a peer leaves: direct UDP, the relay, or both (DESIGN §4). Pure.
import type { Endpoint } from '../tunnel/endpoint.js';
import { MSG_TRANSPORT, TRANSPORT_HEADER_SIZE } from '../wire/wireguard.js';
import { AEAD_TAG_LEN } from '../crypto/aead.js';

/**
 * A direct path is trusted while authenticated packets keep arriving on it: this long after the
 * last one. During a transfer packets arrive constantly, so a dead direct path is noticed within
 * this time and traffic also goes via the relay; an idle peer re-confirms on its next reply.
 */
export const DIRECT_PATH_TRUST_MS = 5_000;

/**
 * The relay path is proven while authenticated packets keep arriving through it: this long after the
 * last one. Longer than WireGuard's 10 s passive keepalive, so a one-way flow through the relay (the
 * receiver answers only with keepalives) stays proven.
 */
export const RELAY_PATH_PROVEN_MS = 15_000;

export interface PathInput {
  endpoint: Endpoint | null;
  lastDirectRxMs: number;
  lastRelayRxMs: number;
}

export interface PathChoice {
  /** Send to this UDP endpoint (null: not at all). */
  direct: Endpoint | null;
  /**
   * While the relay carries the traffic (it is proven: packets from the peer arrived through it), an
   * endpoint that is not trusted (yet, or any more) still gets the handshake messages and
   * keepalives, so that a path that works is used at once, but not the data: a copy of every data
   * packet to an address that does not answer costs the sender as much as the relay path itself.
   * Disco's pings find out when it works (discovery.ts). Until the relay is proven (a stock
   * WireGuard peer is never on it), data goes both ways.
   */
  untrusted: Endpoint | null;
  /** Also (or only) send via the relay. */
  relay: boolean;
  /** Why the relay is used, for `meshd status`. */
  why: string | null;
}

export function choosePath(p: PathInput, nowMs: number, relayAvailable: boolean): PathChoice {
  if (isDirectConfirmed(p, nowMs)) return { direct: p.endpoint, untrusted: null, relay: false, why: null };
  if (!relayAvailable) return { direct: p.endpoint, untrusted: null, relay: false, why: null };
  const why = p.endpoint
    ? p.lastDirectRxMs > 0
      ? `no direct reply from the endpoint in the last ${DIRECT_PATH_TRUST_MS / 1000} s`
      : 'no direct reply from the endpoint yet'
    : 'no endpoint known';
  const relayProven = p.lastRelayRxMs > 0 && nowMs - p.lastRelayRxMs < RELAY_PATH_PROVEN_MS;
  return relayProven ? { direct: null, untrusted: p.endpoint, relay: true, why } : { direct: p.endpoint, untrusted: null, relay: true, why };
}

/** Whether a WireGuard message is one an untrusted endpoint gets too: anything but a data packet. */
export function goesToUntrusted(msg: Uint8Array): boolean {
  return msg[0] !== MSG_TRANSPORT || msg.length <= TRANSPORT_HEADER_SIZE + AEAD_TAG_LEN;
}

/** 0 means never (the clock starts near 0 with the process: 0 is not "just now"). */
export function isDirectConfirmed(p: PathInput, nowMs: number): boolean {
  return p.endpoint !== null && p.lastDirectRxMs > 0 && nowMs - p.lastDirectRxMs < DIRECT_PATH_TRUST_MS;
}
