// What a datagram on the shared UDP socket looks like: STUN, disco, WireGuard, or junk.
// STUN: top two bits zero, magic cookie 0x2112A442 at bytes 4–7 (RFC 5389 §6).
// Disco: the fixed DISCO_MAGIC prefix (see disco codec).
// WireGuard: first byte 1–4 then three zero bytes.
import { wireguardType } from './wireguard.js';

export const STUN_MAGIC_COOKIE = 0x2112a442;
export const STUN_HEADER_LEN = 20;
/** Prefix of every disco message: "MeshD" followed by a speech-balloon-ish 0xF0 0x9F. */
export const DISCO_MAGIC = Uint8Array.of(0x4d, 0x65, 0x73, 0x68, 0x44, 0xf0, 0x9f);

export type DatagramKind = 'wireguard' | 'stun' | 'disco' | 'unknown';

export function isStun(b: Uint8Array): boolean {
  return (
    b.length >= STUN_HEADER_LEN &&
    (b[0] & 0xc0) === 0 &&
    b[4] === 0x21 &&
    b[5] === 0x12 &&
    b[6] === 0xa4 &&
    b[7] === 0x42
  );
}

export function isDisco(b: Uint8Array): boolean {
  if (b.length < DISCO_MAGIC.length) return false;
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (b[i] !== DISCO_MAGIC[i]) return false;
  return true;
}

export function classify(b: Uint8Array): DatagramKind {
  if (wireguardType(b) !== 0) return 'wireguard';
  if (isStun(b)) return 'stun';
  if (isDisco(b)) return 'disco';
  return 'unknown';
}
