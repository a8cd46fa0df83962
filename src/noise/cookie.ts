// MAC1/MAC2 and cookie replies (whitepaper §5.4.4, §5.4.7).
// CookieChecker belongs to the receiving device; CookieGenerator to each peer we send to.
import { hash, mac, MAC_LEN } from '../crypto/blake2s.js';
import { xopen, xseal } from '../crypto/aead.js';
import { constantTimeEqual } from '../crypto/keys.js';
import { LABEL_COOKIE, LABEL_MAC1 } from './constants.js';
import {
  COOKIE_NONCE_LEN,
  COOKIE_REPLY_SIZE,
  MSG_COOKIE_REPLY,
  OFF_COOKIE_COOKIE,
  OFF_COOKIE_NONCE,
  OFF_COOKIE_RECEIVER,
  writeHeader,
  writeU32,
} from '../wire/wireguard.js';

export type Rng = (n: number) => Uint8Array;

/** Offsets of mac1/mac2 are fixed from the end of the message: mac1 at len-32, mac2 at len-16. */
function mac1Offset(msg: Uint8Array): number {
  return msg.length - 2 * MAC_LEN;
}
function mac2Offset(msg: Uint8Array): number {
  return msg.length - MAC_LEN;
}

export class CookieChecker {
  private mac1Key: Uint8Array;
  private encryptionKey: Uint8Array;
  private secret: Uint8Array;
  private secretSetMs = -Infinity;

  constructor(localPublic: Uint8Array, private readonly refreshMs: number) {
    this.mac1Key = hash(LABEL_MAC1, localPublic);
    this.encryptionKey = hash(LABEL_COOKIE, localPublic);
    this.secret = new Uint8Array(32);
  }

  setLocalPublic(localPublic: Uint8Array): void {
    this.mac1Key = hash(LABEL_MAC1, localPublic);
    this.encryptionKey = hash(LABEL_COOKIE, localPublic);
  }

  checkMac1(msg: Uint8Array): boolean {
    const off = mac1Offset(msg);
    const expect = mac(this.mac1Key, msg.subarray(0, off));
    return constantTimeEqual(expect, msg.subarray(off, off + MAC_LEN));
  }

  /** mac2 is valid when it matches the cookie this source would hold now. */
  checkMac2(msg: Uint8Array, source: Uint8Array, nowMs: number): boolean {
    if (nowMs - this.secretSetMs > this.refreshMs) return false;
    const cookie = mac(this.secret, source);
    const off = mac2Offset(msg);
    return constantTimeEqual(mac(cookie, msg.subarray(0, off)), msg.subarray(off, off + MAC_LEN));
  }

  /** A cookie reply to `msg` (an initiation or response) from `source`, addressed to its sender index. */
  createReply(msg: Uint8Array, senderIndex: number, source: Uint8Array, nowMs: number, rng: Rng): Uint8Array {
    if (nowMs - this.secretSetMs > this.refreshMs) {
      this.secret = rng(32);
      this.secretSetMs = nowMs;
    }
    const cookie = mac(this.secret, source);
    const out = new Uint8Array(COOKIE_REPLY_SIZE);
    writeHeader(out, MSG_COOKIE_REPLY);
    writeU32(out, OFF_COOKIE_RECEIVER, senderIndex);
    const nonce = rng(COOKIE_NONCE_LEN);
    out.set(nonce, OFF_COOKIE_NONCE);
    const off = mac1Offset(msg);
    out.set(xseal(this.encryptionKey, nonce, cookie, msg.subarray(off, off + MAC_LEN)), OFF_COOKIE_COOKIE);
    return out;
  }
}

export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly decryptionKey: Uint8Array;
  private cookie: Uint8Array = new Uint8Array(MAC_LEN);
  private cookieSetMs = -Infinity;
  private lastMac1: Uint8Array | null = null;

  constructor(peerPublic: Uint8Array, private readonly refreshMs: number) {
    this.mac1Key = hash(LABEL_MAC1, peerPublic);
    this.decryptionKey = hash(LABEL_COOKIE, peerPublic);
  }

  /** Fills mac1 (and mac2 when a fresh cookie is held) at the end of `msg`. */
  addMacs(msg: Uint8Array, nowMs: number): void {
    const o1 = mac1Offset(msg);
    const m1 = mac(this.mac1Key, msg.subarray(0, o1));
    msg.set(m1, o1);
    this.lastMac1 = m1;
    const o2 = mac2Offset(msg);
    if (nowMs - this.cookieSetMs < this.refreshMs) msg.set(mac(this.cookie, msg.subarray(0, o2)), o2);
    else msg.fill(0, o2, o2 + MAC_LEN);
  }

  /** Takes the cookie from a reply to the last message we sent; false if it does not open. */
  consumeReply(reply: Uint8Array, nowMs: number): boolean {
    if (!this.lastMac1) return false;
    const nonce = reply.subarray(OFF_COOKIE_NONCE, OFF_COOKIE_NONCE + COOKIE_NONCE_LEN);
    const sealed = reply.subarray(OFF_COOKIE_COOKIE, COOKIE_REPLY_SIZE);
    const cookie = xopen(this.decryptionKey, nonce, sealed, this.lastMac1);
    if (!cookie) return false;
    this.cookie = cookie;
    this.cookieSetMs = nowMs;
    this.lastMac1 = null;
    return true;
  }
}
