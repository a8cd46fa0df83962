// Which way a packet to a peer leaves: direct UDP, the relay, or both (DESIGN §4). Pure.
import type { Endpoint } from '../tunnel/endpoint.js';

/**
 * A direct path is trusted while authenticated packets keep arriving on it: this long after the
 * last one. During a transfer packets arrive constantly, so a dead direct path is noticed within
 * this time and traffic also goes via the relay; an idle peer re-confirms on its next reply.
 */
export const DIRECT_PATH_TRUST_MS = 5_000;

export interface PathInput {
  endpoint: Endpoint | null;
  lastDirectRxMs: number;
}

export interface PathChoice {
  /** Send to this UDP endpoint (null: not at all). */
  direct: Endpoint | null;
  /** Also (or only) send via the relay. */
  relay: boolean;
  /** Why the relay is used, for `meshd status`. */
  why: string | null;
}

export function choosePath(p: PathInput, nowMs: number, relayAvailable: boolean): PathChoice {
  if (p.endpoint && nowMs - p.lastDirectRxMs < DIRECT_PATH_TRUST_MS) return { direct: p.endpoint, relay: false, why: null };
  if (!relayAvailable) return { direct: p.endpoint, relay: false, why: null };
  const why = p.endpoint
    ? p.lastDirectRxMs > 0
      ? `no direct reply from the endpoint in the last ${DIRECT_PATH_TRUST_MS / 1000} s`
      : 'no direct reply from the endpoint yet'
    : 'no endpoint known';
  return { direct: p.endpoint, relay: true, why };
}

export function isDirectConfirmed(p: PathInput, nowMs: number): boolean {
  return p.endpoint !== null && nowMs - p.lastDirectRxMs < DIRECT_PATH_TRUST_MS;
}
