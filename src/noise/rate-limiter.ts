// Per-source token bucket for handshake messages under load (as wireguard-go's ratelimiter):
// 20 per second with a burst of 5, keyed by IPv4 address or IPv6 /64. Time is passed in.

export const RATE_PACKETS_PER_SECOND = 20;
export const RATE_BURST = 5;
const TOKEN_COST_MS = 1000 / RATE_PACKETS_PER_SECOND;
const MAX_TOKENS_MS = TOKEN_COST_MS * RATE_BURST;
const ENTRY_IDLE_MS = 1000;
/** Bounded memory: past this many sources, the table is cleared (everything is rate limited anew). */
export const RATE_MAX_ENTRIES = 65_536;

interface Bucket {
  tokensMs: number;
  lastMs: number;
}

export class RateLimiter {
  private readonly table = new Map<string, Bucket>();
  private lastGcMs = 0;

  /** True when one more handshake message from this source key may be processed now. */
  allow(sourceKey: string, nowMs: number): boolean {
    this.gc(nowMs);
    const b = this.table.get(sourceKey);
    if (!b) {
      if (this.table.size >= RATE_MAX_ENTRIES) this.table.clear();
      this.table.set(sourceKey, { tokensMs: MAX_TOKENS_MS - TOKEN_COST_MS, lastMs: nowMs });
      return true;
    }
    b.tokensMs = Math.min(MAX_TOKENS_MS, b.tokensMs + (nowMs - b.lastMs));
    b.lastMs = nowMs;
    if (b.tokensMs >= TOKEN_COST_MS) {
      b.tokensMs -= TOKEN_COST_MS;
      return true;
    }
    return false;
  }

  get size(): number {
    return this.table.size;
  }

  private gc(nowMs: number): void {
    if (nowMs - this.lastGcMs < ENTRY_IDLE_MS) return;
    this.lastGcMs = nowMs;
    for (const [k, b] of this.table) if (nowMs - b.lastMs > ENTRY_IDLE_MS) this.table.delete(k);
  }
}

/** The rate limiter's key for an address: the IPv4 address, or the IPv6 /64. */
export function rateLimitKey(address: string): string {
  if (!address.includes(':')) return address;
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  const parts = expandV6Groups(address);
  return parts.slice(0, 4).join(':') + '::/64';
}

function expandV6Groups(a: string): string[] {
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail !== undefined ? 8 - h.length - t.length : 0;
  return [...h, ...Array<string>(Math.max(0, fill)).fill('0'), ...t];
}
