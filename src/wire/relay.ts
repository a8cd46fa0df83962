// meshd relay frames: one frame per WebSocket binary message. Integers big-endian.
// Parsers never throw; fixed-size frames tolerate trailing bytes (room for extensions).
//
//  type  name            payload (after the 1-byte type)
//  0x01  server-hello    version u8 | server public key 32 | challenge 32
//  0x02  client-login    client public key 32 | nonce 24 | sealed proof 48 (challenge 32 + tag 16)
//  0x03  server-welcome  keepalive interval ms u32 | max frame bytes u32
//  0x04  send-packet     destination public key 32 | packet bytes…
//  0x05  recv-packet     source public key 32 | packet bytes…
//  0x06  peer-gone       public key 32 | reason u8 (0 = not connected here)
//  0x07  ping            8 opaque bytes
//  0x08  pong            the 8 bytes of the ping it answers
//  0x09  keepalive       (empty)
//  0x0a  notice          code u8 | UTF-8 text… (health and shutdown notices)

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
export const CLOSE_SHUTDOWN = 1001;

export type RelayFrame =
  | { type: 'server-hello'; version: number; serverKey: Uint8Array; challenge: Uint8Array }
  | { type: 'client-login'; clientKey: Uint8Array; nonce: Uint8Array; sealed: Uint8Array }
  | { type: 'server-welcome'; keepaliveMs: number; maxFrameBytes: number }
  | { type: 'send-packet'; key: Uint8Array; packet: Uint8Array }
  | { type: 'recv-packet'; key: Uint8Array; packet: Uint8Array }
  | { type: 'peer-gone'; key: Uint8Array; reason: number }
  | { type: 'ping'; data: Uint8Array }
  | { type: 'pong'; data: Uint8Array }
  | { type: 'keepalive' }
  | { type: 'notice'; code: number; text: string };

export type RelayDecodeError = { type: 'invalid'; reason: 'empty' | 'unknown-type' | 'short' };

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
    case FRAME_CLIENT_LOGIN:
      if (p.length < KEY_LEN + LOGIN_NONCE_LEN + LOGIN_SEALED_LEN) return short;
      return { type: 'client-login', clientKey: copyBytes(p, 0, 32), nonce: copyBytes(p, 32, 56), sealed: copyBytes(p, 56, 56 + LOGIN_SEALED_LEN) };
    case FRAME_SERVER_WELCOME:
      if (p.length < 8) return short;
      return { type: 'server-welcome', keepaliveMs: u32(p, 0), maxFrameBytes: u32(p, 4) };
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
    default:
      return { type: 'invalid', reason: 'unknown-type' };
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
export const encodeClientLogin = (clientKey: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Buffer =>
  frame(FRAME_CLIENT_LOGIN, clientKey, nonce, sealed);
export const encodeServerWelcome = (keepaliveMs: number, maxFrameBytes: number): Buffer =>
  frame(FRAME_SERVER_WELCOME, be32(keepaliveMs), be32(maxFrameBytes));
export const encodeSendPacket = (dst: Uint8Array, packet: Uint8Array): Buffer => frame(FRAME_SEND_PACKET, dst, packet);
export const encodeRecvPacket = (src: Uint8Array, packet: Uint8Array): Buffer => frame(FRAME_RECV_PACKET, src, packet);
export const encodePeerGone = (key: Uint8Array, reason = 0): Buffer => frame(FRAME_PEER_GONE, key, Uint8Array.of(reason));
export const encodePing = (data: Uint8Array): Buffer => frame(FRAME_PING, data);
export const encodePong = (data: Uint8Array): Buffer => frame(FRAME_PONG, data);
export const encodeKeepalive = (): Buffer => frame(FRAME_KEEPALIVE);
export const encodeNotice = (code: number, text: string): Buffer => frame(FRAME_NOTICE, Uint8Array.of(code), Buffer.from(text, 'utf8'));
