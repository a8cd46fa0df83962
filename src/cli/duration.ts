// Durations on the command line: "24h", "30m", "90s", "7d" or a number of seconds.
import { UsageError } from '../errors.js';

export function parseDuration(s: string, what = '--expires'): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(s.trim());
  if (!m) throw new UsageError(`${what}: "${s}" is not a duration (e.g. 24h, 30m, 90s)`);
  const unit = { '': 1000, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
