// A clock the test moves by hand.
import type { Clock } from '../../src/tunnel/device.js';

export class FakeClock implements Clock {
  constructor(
    public mono = 1_000_000,
    public wallMs = Date.UTC(2026, 0, 1),
  ) {}
  now(): number {
    return this.mono;
  }
  wall(): number {
    return this.wallMs;
  }
  advance(ms: number): void {
    this.mono += ms;
    this.wallMs += ms;
  }
}
