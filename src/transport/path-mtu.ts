// Path MTU search for one peer's direct path (DESIGN.md §4, docs/operations.md "Path MTU"), in the
// manner of packetization-layer PMTU discovery (RFC 8899): disco pings padded to the size they test
// travel the path with DF set (the socket never fragments: IP_PMTUDISC_PROBE), and the largest size
// that arrives (its pong comes back) is the path's MTU. Sizes are inner MTUs: a probe of size S is a
// datagram as long as a WireGuard data packet carrying S bytes (S + 32). Pure: time is passed in.
//
//  - The first round tries the cap (the TUN MTU, the underlay's minus 80) and 1280: on a common path
//    the cap arrives and the search ends after one round trip.
//  - Later rounds probe PROBES_PER_ROUND sizes spread over the range still open (between the
//    largest size that arrived and the smallest that did not), each sent COPIES times, so one lost
//    datagram does not make a size look too big. A round ends when every size has arrived or after
//    max(ROUND_MIN_MS, ROUND_RTTS × RTT). The range shrinks eightfold per round: about five rounds
//    find the exact MTU anywhere between 576 and 1420.
//  - The result holds for RESEARCH_MS, then the path is searched again (the published MTU stays
//    until the new search ends); a new endpoint starts a new search at the safe default.

/** The MTU used on a path not yet probed (and the default TUN MTU of WireGuard-style hosts). */
export const PMTU_SAFE = 1280;
/** The smallest MTU the search reports (IPv4's minimum datagram size every host takes, RFC 791). */
export const PMTU_MIN = 576;
export const PMTU_PROBES_PER_ROUND = 7;
export const PMTU_COPIES = 2;
export const PMTU_ROUND_MIN_MS = 300;
export const PMTU_ROUND_RTTS = 4;
/** How long a search's result holds before the path is searched again (RFC 8899's PMTU_RAISE_TIMER). */
export const PMTU_RESEARCH_MS = 10 * 60_000;

export class PathMtuSearch {
  /** The endpoint being searched (its formatted address), so a new endpoint starts over. */
  readonly endpoint: string;
  /** The MTU in use for the path: the last result, or the safe default while none. */
  private published: number;
  private result: number | null = null;
  private done = false;
  private lo = PMTU_MIN - 1;
  private hi: number;
  private round: Map<number, boolean> | null = null;
  private roundEndsMs = -Infinity;
  private nextSearchMs = -Infinity;
  /** Probe datagrams sent for this endpoint, and rounds run (for status and tests). */
  probesSent = 0;
  rounds = 0;

  constructor(
    endpoint: string,
    private cap: number,
  ) {
    this.endpoint = endpoint;
    this.hi = cap + 1;
    this.published = Math.min(PMTU_SAFE, cap);
  }

  /** The MTU to use for this path now. */
  mtu(): number {
    return this.published;
  }

  /** The MTU found by the last finished search (null: none finished yet). */
  found(): number | null {
    return this.result;
  }

  searching(): boolean {
    return !this.done;
  }

  /**
   * The sizes to probe now, smallest first (each to be sent COPIES times in a row, then reported
   * with arrived()), or an empty list: a round is in flight, or the result holds. `cap` is the
   * current TUN MTU. In that order the socket's GSO batching (a run of equal sizes, only the last
   * shorter) never puts a size in one send with a larger one, which a router would drop with it.
   */
  due(nowMs: number, rttMs: number | null, cap: number): number[] {
    if (cap !== this.cap) this.restart(cap);
    if (this.round) {
      if (![...this.round.values()].every(Boolean) && nowMs < this.roundEndsMs) return [];
      this.endRound();
    }
    if (!this.done && this.hi - this.lo <= 1) this.finish(nowMs);
    if (this.done) {
      if (nowMs < this.nextSearchMs) return [];
      // The result held for RESEARCH_MS: search the whole range again (the result stays in use).
      this.done = false;
      this.lo = PMTU_MIN - 1;
      this.hi = this.cap + 1;
    }
    const fresh = this.lo === PMTU_MIN - 1 && this.hi === this.cap + 1;
    const sizes = fresh ? this.firstSizes() : this.spread();
    this.round = new Map(sizes.map((s) => [s, false]));
    this.roundEndsMs = nowMs + Math.max(PMTU_ROUND_MIN_MS, PMTU_ROUND_RTTS * (rttMs ?? 0));
    this.rounds++;
    this.probesSent += sizes.length * PMTU_COPIES;
    return sizes;
  }

  /** A probe of `size` arrived (its pong came back from the endpoint it went to). */
  arrived(size: number): void {
    if (this.round?.has(size)) this.round.set(size, true);
    if (size > this.lo) this.lo = size;
    if (this.hi <= this.lo) this.hi = this.lo + 1;
  }

  private firstSizes(): number[] {
    return this.cap > PMTU_SAFE ? [PMTU_SAFE, this.cap] : [this.cap];
  }

  /** PROBES_PER_ROUND sizes spread evenly inside (lo, hi). */
  private spread(): number[] {
    const out = new Set<number>();
    const span = this.hi - this.lo;
    for (let i = 1; i <= PMTU_PROBES_PER_ROUND; i++) {
      const s = this.lo + Math.round((i * span) / (PMTU_PROBES_PER_ROUND + 1));
      if (s > this.lo && s < this.hi) out.add(s);
    }
    if (out.size === 0) out.add(this.lo + 1);
    return [...out].sort((a, b) => a - b);
  }

  private endRound(): void {
    const round = this.round!;
    this.round = null;
    // A size that did not arrive bounds the range from above, unless a larger one arrived (then its
    // probes were lost, not too big).
    for (const [size, ok] of round) if (!ok && size > this.lo && size < this.hi) this.hi = size;
    // Publish what is known to arrive at once when the safe default is known not to.
    if (this.result === null && this.hi <= this.published) this.published = Math.max(this.lo, PMTU_MIN);
  }

  private finish(nowMs: number): void {
    this.done = true;
    this.result = Math.max(this.lo, PMTU_MIN);
    this.published = this.result;
    this.nextSearchMs = nowMs + PMTU_RESEARCH_MS;
  }

  private restart(cap: number): void {
    this.cap = cap;
    this.lo = PMTU_MIN - 1;
    this.hi = cap + 1;
    this.round = null;
    this.result = null;
    this.done = false;
    this.published = Math.min(PMTU_SAFE, cap);
    this.nextSearchMs = -Infinity;
  }
}
