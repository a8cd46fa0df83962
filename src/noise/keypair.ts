// A transport session: the two directional keys, the send counter and the receive replay window.
import { ReplayFilter } from './replay.js';
import type { SessionKeys } from './handshake.js';


const NOTHING_CONFIRMED = Object.freeze({ confirmed: false, dropped: null });
export class Keypair {
  readonly sendKey: Uint8Array;
  readonly recvKey: Uint8Array;
  readonly isInitiator: boolean;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly createdMs: number;
  sendCounter = 0;
  readonly replay = new ReplayFilter();

  constructor(keys: SessionKeys, nowMs: number) {
    this.sendKey = keys.sendKey;
    this.recvKey = keys.recvKey;
    this.isInitiator = keys.isInitiator;
    this.localIndex = keys.localIndex;
    this.remoteIndex = keys.remoteIndex;
    this.createdMs = nowMs;
  }

  wipe(): void {
    this.sendKey.fill(0);
    this.recvKey.fill(0);
  }
}

/** previous / current / next, rotated as whitepaper §6.3 and wireguard-go's keypair.go describe. */
export class Keypairs {
  previous: Keypair | null = null;
  current: Keypair | null = null;
  /** A responder's new session, confirmed (made current) by the first packet that arrives on it. */
  next: Keypair | null = null;

  /** Installs a freshly derived keypair; returns those that are now unused (to unindex and wipe). */
  install(kp: Keypair): Keypair[] {
    const dropped: Keypair[] = [];
    if (kp.isInitiator) {
      if (this.next) {
        if (this.previous) dropped.push(this.previous);
        this.previous = this.next;
        this.next = null;
        if (this.current) dropped.push(this.current);
      } else {
        if (this.previous) dropped.push(this.previous);
        this.previous = this.current;
      }
      this.current = kp;
    } else {
      if (this.next) dropped.push(this.next);
      this.next = kp;
      if (this.previous) dropped.push(this.previous);
      this.previous = null;
    }
    return dropped;
  }

  /** Called when a packet authenticates under `kp`; promotes `next`. Returns a dropped keypair, if any. */
  received(kp: Keypair): Readonly<{ confirmed: boolean; dropped: Keypair | null }> {
    if (kp !== this.next) return NOTHING_CONFIRMED; // every data packet but the first of a session
    const dropped = this.previous;
    this.previous = this.current;
    this.current = this.next;
    this.next = null;
    return { confirmed: true, dropped };
  }

  all(): Keypair[] {
    const out: Keypair[] = [];
    if (this.previous) out.push(this.previous);
    if (this.current) out.push(this.current);
    if (this.next) out.push(this.next);
    return out;
  }

  clear(): Keypair[] {
    const all = this.all();
    this.previous = this.current = this.next = null;
    return all;
  }
}
