// meshd relay frames: one frame per WebSocket binary message. Integers big-endian.
// Parsers never throw; fixed-size frames tolerate trailing bytes (room for extensions).
//
//  type  name            payload (after the 1-byte type)
//  0x01  server-hello    version u8 | server public key 32 | challenge 32
//  0x02  client-login    client public key 32 | nonce 24 | sealed proof 48 (challenge 32 + tag 16)
//                        [| features u32]
//  0x03  server-welcome  keepalive interval ms u32 | max frame bytes u32 [| features u32]
//  0x04  send-packet     destination public key 32 | packet bytes…
//  0x05  recv-packet     source public key 32 | packet bytes…
//  0x06  peer-gone       public key 32 | reason u8 (0 = not connected here, 1 = it disconnected)
//  0x07  ping            8 opaque bytes
//  0x08  pong            the 8 bytes of the ping it answers
//  0x09  keepalive       (empty)
//  0x0a  notice          code u8 | UTF-8 text… (health and shutdown notices)
//  0x0b  peer-present    public key 32 (a key this client sent to while it was absent, or talked to
//                        before it left, has logged in)
//  0x0c  send-batch      destination public key 32 | { length u16 | packet bytes }…
//  0x0d  recv-batch      source public key 32 | { length u16 | packet bytes }…
//  0x0e  subscribe       mesh key 32 | serial held u64 (0: none) — client to relay: send me this
//                        mesh's rosters, now (if newer than mine) and on every change
//  0x0f  roster          mesh key 32 | total length u32 | offset u32 | bytes… — relay to client: one
//                        part of a signed roster (parts in order, offset 0 first; see roster-parts.ts)
//  0x10  publish         mesh key 32 | total length u32 | offset u32 | bytes… — client to relay: one
//                        part of a signed roster the client holds and the relay may lack
//  0x11  roster-held     mesh key 32 | serial u64 — relay to client: the serial the relay holds
//                        (0: none), in answer to subscribe and to each complete publish
//  0x12  roster-delta    mesh key 32 | total length u32 | offset u32 | bytes… — relay to client: one
//                        part of a line delta (src/mesh/delta.ts) from the serial the client holds
//
// Features (the optional u32 of client-login and server-welcome; a peer that sends none has none):
// FEATURE_BATCH — the sender understands send-batch/recv-batch. A client sends batches only to a
// relay that offered them; the relay sends recv-batch only to clients that did, splitting a batch
// into recv-packet frames for the others. Unknown frame types from the relay are ignored by
// clients, so peer-present needs no feature bit.
// FEATURE_MESH — (relay only) the relay carries rosters (started with --mesh-key): clients send
// subscribe and publish only to a relay that offers it.
// FEATURE_ROSTER_DELTA — (client only) the client takes roster-delta frames; others get whole rosters.

import { copyBytes } from './bytes.js';

export const RELAY_PROTOCOL_VERSION = 1;
export const KEY_LEN = 32;
export const CHALLENGE_LEN = 32;
export const LOGIN_NONCE_LEN = 24;
export const LOGIN_SEALED_LEN = CHALLENGE_LEN + 16;
export const PING_LEN = 8;

export const FRAME_SERVER_HELLO = 0x01;
export const FRAME_CLIENT_LOGIN = 0x02;
export const FRAME_SERVER_WELCOME = 0x03;
export const FRAME_SEND_PACKET = 0x04;
export const FRAME_RECV_PACKET = 0x05;
export const FRAME_PEER_GONE = 0x06;
export const FRAME_PING = 0x07;
export const FRAME_PONG = 0x08;
export const FRAME_KEEPALIVE = 0x09;
export const FRAME_NOTICE = 0x0a;
export const FRAME_PEER_PRESENT = 0x0b;
export const FRAME_SEND_BATCH = 0x0c;
export const FRAME_RECV_BATCH = 0x0d;
export const FRAME_SUBSCRIBE = 0x0e;
export const FRAME_ROSTER = 0x0f;
export const FRAME_PUBLISH = 0x10;
export const FRAME_ROSTER_HELD = 0x11;
export const FRAME_ROSTER_DELTA = 0x12;

export const FEATURE_BATCH = 1;
export const FEATURE_MESH = 2;
export const FEATURE_ROSTER_DELTA = 4;
/** Header of a roster / publish frame: type, mesh key, total length, offset. */
export const ROSTER_PART_HEADER_LEN = 1 + 32 + 4 + 4;
/** Header of a send-batch / recv-batch frame (type and key), and of each packet in it (length u16). */
export const BATCH_HEADER_LEN = 1 + 32;
export const BATCH_ENTRY_HEADER_LEN = 2;
export const BATCH_MAX_PACKET_LEN = 0xffff;

export const PEER_GONE_NOT_HERE = 0;
export const PEER_GONE_DISCONNECTED = 1;

export const NOTICE_SHUTDOWN = 1;
export const NOTICE_REPLACED = 2;
export const NOTICE_HEALTH = 3;

/** WebSocket close codes the relay uses, with their reasons. */
export const CLOSE_FRAME_BEFORE_LOGIN = 4001;
export const CLOSE_BAD_PROOF = 4002;
export const CLOSE_MALFORMED = 4003;
export const CLOSE_NOT_ALLOWED = 4004;
export const CLOSE_SERVER_FULL = 4005;
export const CLOSE_REPLACED = 4006;
export const CLOSE_LOGIN_TIMEOUT = 4007;
/** A mesh relay closes the connection of a key its newest roster no longer lists. */
export const CLOSE_NOT_MEMBER = 4008;
export const CLOSE_SHUTDOWN = 1001;

export type RelayFrame =
  | { type: 'server-hello'; version: number; serverKey: Uint8Array; challenge: Uint8Array }
  | { type: 'client-login'; clientKey: Uint8Array; nonce: Uint8Array; sealed: Uint8Array; features: number }
  | { type: 'server-welcome'; keepaliveMs: number; maxFrameBytes: number; features: number }
  | { type: 'send-packet'; key: Uint8Array; packet: Uint8Array }
  | { type: 'recv-packet'; key: Uint8Array; packet: Uint8Array }
  | { type: 'peer-gone'; key: Uint8Array; reason: number }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'keepalive' }
  | { type: 'notice'; code: number; text: string }
  | { type: 'peer-present'; key: Uint8Array }
  | { type: 'subscribe' | 'roster-held'; meshKey: Uint8Array; serial: number }
  /** `bytes` is a view into the frame. */
  | { type: 'roster' | 'publish' | 'roster-delta'; meshKey: Uint8Array; total: number; offset: number; bytes: Uint8Array }
  /** `body` is the frame's `{ length | packet }…` part, checked to be well formed (see batchPackets). */
  | { type: 'send-batch' | 'recv-batch'; key: Uint8Array; body: Uint8Array; count: number };

export type RelayDecodeError = { type: 'invalid'; reason: 'empty' | 'unknown-type' | 'short' | 'bad-batch' | 'bad-serial' | 'bad-part' };

function u32(b: Uint8Array, off: number): number {
  return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
}

export function decodeRelayFrame(b: Uint8Array): RelayFrame | RelayDecodeError {
  if (b.length === 0) return { type: 'invalid', reason: 'empty' };
  const p = b.subarray(1);
  const short: RelayDecodeError = { type: 'invalid', reason: 'short' };
  switch (b[0]) {
    case FRAME_SERVER_HELLO:
      if (p.length < 1 + KEY_LEN + CHALLENGE_LEN) return short;
      return { type: 'server-hello', version: p[0], serverKey: copyBytes(p, 1, 33), challenge: copyBytes(p, 33, 65) };
    case FRAME_CLIENT_LOGIN: {
      const end = KEY_LEN + LOGIN_NONCE_LEN + LOGIN_SEALED_LEN;
      if (p.length < end) return short;
      const features = p.length >= end + 4 ? u32(p, end) : 0;
      return { type: 'client-login', clientKey: copyBytes(p, 0, 32), nonce: copyBytes(p, 32, 56), sealed: copyBytes(p, 56, end), features };
    }
    case FRAME_SERVER_WELCOME:
      if (p.length < 8) return short;
      return { type: 'server-welcome', keepaliveMs: u32(p, 0), maxFrameBytes: u32(p, 4), features: p.length >= 12 ? u32(p, 8) : 0 };
    case FRAME_SEND_PACKET:
    case FRAME_RECV_PACKET:
      if (p.length < KEY_LEN) return short;
      return { type: b[0] === FRAME_SEND_PACKET ? 'send-packet' : 'recv-packet', key: p.subarray(0, 32), packet: p.subarray(32) };
    case FRAME_PEER_GONE:
      if (p.length < KEY_LEN + 1) return short;
      return { type: 'peer-gone', key: copyBytes(p, 0, 32), reason: p[32] };
    case FRAME_PING:
    case FRAME_PONG:
      if (p.length < PING_LEN) return short;
      return { type: b[0] === FRAME_PING ? 'ping' : 'pong', data: copyBytes(p, 0, PING_LEN) };
    case FRAME_KEEPALIVE:
      return { type: 'keepalive' };
    case FRAME_NOTICE:
      if (p.length < 1) return short;
      return { type: 'notice', code: p[0], text: Buffer.from(p.subarray(1)).toString('utf8') };
    case FRAME_PEER_PRESENT:
      if (p.length < KEY_LEN) return short;
      return { type: 'peer-present', key: copyBytes(p, 0, 32) };
    case FRAME_SEND_BATCH:
    case FRAME_RECV_BATCH: {
      if (p.length < KEY_LEN) return short;
      const body = p.subarray(KEY_LEN);
      const count = batchCount(body);
      if (count < 0) return { type: 'invalid', reason: 'bad-batch' };
      return { type: b[0] === FRAME_SEND_BATCH ? 'send-batch' : 'recv-batch', key: p.subarray(0, KEY_LEN), body, count };
    }
    case FRAME_SUBSCRIBE:
    case FRAME_ROSTER_HELD: {
      if (p.length < KEY_LEN + 8) return short;
      const serial = u32(p, KEY_LEN) * 2 ** 32 + u32(p, KEY_LEN + 4);
      if (!Number.isSafeInteger(serial)) return { type: 'invalid', reason: 'bad-serial' };
      return { type: b[0] === FRAME_SUBSCRIBE ? 'subscribe' : 'roster-held', meshKey: copyBytes(p, 0, KEY_LEN), serial };
    }
    case FRAME_ROSTER:
    case FRAME_ROSTER_DELTA:
    case FRAME_PUBLISH: {
      if (p.length < KEY_LEN + 8) return short;
      const total = u32(p, KEY_LEN);
      const offset = u32(p, KEY_LEN + 4);
      const bytes = p.subarray(KEY_LEN + 8);
      if (offset + bytes.length > total || (bytes.length === 0 && total > 0)) return { type: 'invalid', reason: 'bad-part' };
      return { type: b[0] === FRAME_ROSTER ? 'roster' : b[0] === FRAME_PUBLISH ? 'publish' : 'roster-delta', meshKey: copyBytes(p, 0, KEY_LEN), total, offset, bytes };
    }
    default:
      return { type: 'invalid', reason: 'unknown-type' };
  }
}

/** Packets in a batch body, or -1 when an entry runs past the end (a batch is exactly its entries). */
function batchCount(body: Uint8Array): number {
  let off = 0;
  let n = 0;
  while (off < body.length) {
    if (off + BATCH_ENTRY_HEADER_LEN > body.length) return -1;
    off += BATCH_ENTRY_HEADER_LEN + ((body[off] << 8) | body[off + 1]);
    if (off > body.length) return -1;
    n++;
  }
  return n;
}

/**
 * Calls `fn` with a view of each packet of a (decoded, so well-formed) batch body. The views are
 * plain Uint8Arrays even when `body` is a Buffer: making a Buffer per packet costs more than the
 * rest of the loop.
 */
export function forEachBatchPacket(body: Uint8Array, fn: (packet: Uint8Array) => void): void {
  const ab = body.buffer;
  const base = body.byteOffset;
  let off = 0;
  while (off + BATCH_ENTRY_HEADER_LEN <= body.length) {
    const len = (body[off] << 8) | body[off + 1];
    off += BATCH_ENTRY_HEADER_LEN;
    if (off + len > body.length) return;
    fn(new Uint8Array(ab, base + off, len));
    off += len;
  }
}

function frame(type: number, ...parts: Uint8Array[]): Buffer {
  const len = parts.reduce((n, p) => n + p.length, 1);
  const out = Buffer.allocUnsafe(len);
  out[0] = type;
  let off = 1;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function be32(n: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

export const encodeServerHello = (serverKey: Uint8Array, challenge: Uint8Array): Buffer =>
  frame(FRAME_SERVER_HELLO, Uint8Array.of(RELAY_PROTOCOL_VERSION), serverKey, challenge);
export const encodeClientLogin = (clientKey: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, features = 0): Buffer =>
  frame(FRAME_CLIENT_LOGIN, clientKey, nonce, sealed, be32(features));
export const encodeServerWelcome = (keepaliveMs: number, maxFrameBytes: number, features = 0): Buffer =>
  frame(FRAME_SERVER_WELCOME, be32(keepaliveMs), be32(maxFrameBytes), be32(features));
export const encodeSendPacket = (dst: Uint8Array, packet: Uint8Array): Buffer => frame(FRAME_SEND_PACKET, dst, packet);
export const encodeRecvPacket = (src: Uint8Array, packet: Uint8Array): Buffer => frame(FRAME_RECV_PACKET, src, packet);
export const encodePeerGone = (key: Uint8Array, reason = 0): Buffer => frame(FRAME_PEER_GONE, key, Uint8Array.of(reason));
export const encodePing = (data: Uint8Array): Buffer => frame(FRAME_PING, data);
export const encodePong = (data: Uint8Array): Buffer => frame(FRAME_PONG, data);
export const encodeKeepalive = (): Buffer => frame(FRAME_KEEPALIVE);
export const encodeNotice = (code: number, text: string): Buffer => frame(FRAME_NOTICE, Uint8Array.of(code), Buffer.from(text, 'utf8'));
export const encodePeerPresent = (key: Uint8Array): Buffer => frame(FRAME_PEER_PRESENT, key);
const be64 = (n: number): Uint8Array => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(Math.floor(n / 2 ** 32), 0);
  b.writeUInt32BE(n >>> 0, 4);
  return b;
};
export const encodeSubscribe = (meshKey: Uint8Array, serial: number): Buffer => frame(FRAME_SUBSCRIBE, meshKey, be64(serial));
export const encodeRosterHeld = (meshKey: Uint8Array, serial: number): Buffer => frame(FRAME_ROSTER_HELD, meshKey, be64(serial));
/** One roster (FRAME_ROSTER) or publish (FRAME_PUBLISH) part: `bytes` is the part, at `offset` of `total`. */
export const encodeRosterPart = (type: typeof FRAME_ROSTER | typeof FRAME_PUBLISH | typeof FRAME_ROSTER_DELTA, meshKey: Uint8Array, total: number, offset: number, bytes: Uint8Array): Buffer =>
  frame(type, meshKey, be32(total), be32(offset), bytes);

/**
 * Builds send-batch frames in one reusable buffer: `add` copies a packet in (the only copy on the
 * sending side), `take` hands out the finished frame. Frames stay within `maxFrameBytes`.
 */
export class BatchWriter {
  private buf: Buffer;
  private len = 0;
  private dst: Uint8Array | null = null;
  private readonly spare: Buffer[] = [];
  count = 0;

  constructor(
    private readonly type: number,
    readonly maxFrameBytes: number,
  ) {
    this.buf = Buffer.allocUnsafe(maxFrameBytes);
  }

  /** Bytes the frame under construction holds (0: none). */
  get size(): number {
    return this.len;
  }

  /** The key the frame under construction is addressed to. */
  get key(): Uint8Array | null {
    return this.dst;
  }

  /** Whether `packet` still fits into the frame under construction for `dst`. */
  fits(dst: Uint8Array, packetLen: number): boolean {
    return this.dst !== null && keysEqual(this.dst, dst) && this.len + BATCH_ENTRY_HEADER_LEN + packetLen <= this.maxFrameBytes;
  }

  /** Largest packet a batch can carry at all. */
  get maxPacketLen(): number {
    return Math.min(BATCH_MAX_PACKET_LEN, this.maxFrameBytes - BATCH_HEADER_LEN - BATCH_ENTRY_HEADER_LEN);
  }

  /** Appends a packet; the caller checked `fits` (or that the writer is empty). */
  add(dst: Uint8Array, packet: Uint8Array): void {
    if (this.len === 0) {
      this.buf[0] = this.type;
      this.buf.set(dst, 1);
      this.dst = this.buf.subarray(1, 1 + KEY_LEN);
      this.len = BATCH_HEADER_LEN;
    }
    this.buf[this.len] = packet.length >>> 8;
    this.buf[this.len + 1] = packet.length & 0xff;
    this.buf.set(packet, this.len + BATCH_ENTRY_HEADER_LEN);
    this.len += BATCH_ENTRY_HEADER_LEN + packet.length;
    this.count++;
  }

  /**
   * The finished frame, which the caller owns, and a fresh start. A frame that fills most of the
   * buffer takes the buffer itself (no second copy; the writer allocates a new one); a small one is
   * copied out, so a queued handshake does not hold a whole frame's worth of memory.
   */
  take(): Buffer {
    let out: Buffer;
    if (this.len * 2 >= this.buf.length) {
      out = this.buf.subarray(0, this.len);
      this.buf = this.spare.pop() ?? Buffer.allocUnsafe(this.maxFrameBytes);
    } else {
      out = Buffer.allocUnsafe(this.len);
      this.buf.copy(out, 0, 0, this.len);
    }
    this.len = 0;
    this.count = 0;
    this.dst = null;
    return out;
  }

  /**
   * A frame from `take` that the socket has written: its buffer may be reused for a later frame.
   * (Frames a busy sender allocates and drops otherwise count against V8's external memory and
   * bring on full garbage collections.)
   */
  recycle(frame: Buffer): void {
    const ab = frame.buffer;
    if (frame.byteOffset === 0 && ab.byteLength === this.maxFrameBytes && this.spare.length < BATCH_SPARE_BUFFERS && ab instanceof ArrayBuffer) {
      this.spare.push(Buffer.from(ab));
    }
  }
}

/** Frame buffers a BatchWriter keeps for reuse (see recycle). */
export const BATCH_SPARE_BUFFERS = 8;

function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
