// Disco: path-discovery messages between peers, on the data socket or through a relay.
// Sealed end to end with the node keys (see crypto/disco-box.ts). Big-endian. Parsers never throw
// and ignore trailing bytes (room for extensions).
//
// Datagram:
//   off  len  field
//     0    7  DISCO_MAGIC ("MeshD" F0 9F)
//     7   32  sender public key
//    39   24  nonce
//    63    n  sealed message (plaintext + 16-byte tag)
//
// Plaintext message:
//     0    1  type: 1 ping, 2 pong, 3 call-me-maybe
//     1    1  version (0)
//   ping           2 12 transaction id [| roster serial u64 [| zero padding]]
//                  (a path MTU probe is a ping padded to the size it tests; a prober without a
//                  roster sends serial FF…FF, which decodes as none)
//   pong           2 12 transaction id | 14 address (the UDP source the ping came from; family 0 = none, e.g. via a relay)
//                  [| roster serial u64]
//   roster-delta   2  … a line delta of the mesh's roster (src/mesh/delta.ts) from the serial the
//                  receiver said it holds: a host whose relays missed a change learns it from a peer
//   call-me-maybe  2  1 count | count × address   (the sender's candidate endpoints)
//                  [| nat u8 (0 unknown, 1 endpoint-independent mapping, 2 varies by destination)
//                   | caps u8 (bit 0: takes part in birthday probing, transport/birthday.ts;
//                     bit 1: the sender's NAT hands out ports in order, counting up)
//                   [| fresh count u8 (at most 4) | count × port u16: ports of the sender's public
//                      IPv4 address that a new socket of its was just mapped to, where its probing
//                      sockets' ports lie behind a NAT that hands out ports in order]]
//   redeem         2 16 invitation token | 18 32 the joining host's own public key
//   redeem-result  2  1 status (0 accepted, 1 already used, 2 expired, 3 unknown)
// Address: family u8 (4 or 6) | 4 or 16 address bytes | port u16
import { DISCO_MAGIC } from './classify.js';
import { copyBytes } from './bytes.js';
import { parseIp, formatIpAddr } from '../tunnel/cidr.js';
import type { Endpoint } from '../tunnel/endpoint.js';

export const DISCO_HEADER_LEN = DISCO_MAGIC.length + 32 + 24;
export const DISCO_TXID_LEN = 12;
export const DISCO_PING = 1;
export const DISCO_PONG = 2;
export const DISCO_CALL_ME_MAYBE = 3;
export const DISCO_REDEEM = 4;
export const DISCO_REDEEM_RESULT = 5;
export const DISCO_ROSTER_DELTA = 6;
/** Largest roster delta sent in one disco message (it must fit one datagram on any path). */
export const DISCO_MAX_DELTA_BYTES = 1000;
export const INVITE_TOKEN_LEN = 16;
export const REDEEM_OK = 0;
export const REDEEM_USED = 1;
export const REDEEM_EXPIRED = 2;
export const REDEEM_UNKNOWN = 3;
/** Candidates carried at most in one call-me-maybe. */
export const DISCO_MAX_CANDIDATES = 32;
/** Fresh ports carried at most in one call-me-maybe. */
export const DISCO_MAX_FRESH_PORTS = 4;

export type DiscoMessage =
  /** `serial`: the sender's roster serial, in a mesh (absent from senders without one, or older ones). */
  | { type: 'ping'; txid: Uint8Array; serial?: number; padTo?: number }
  | { type: 'pong'; txid: Uint8Array; src: Endpoint | null; serial?: number }
  | { type: 'roster-delta'; delta: Uint8Array }
  /**
   * `nat`, `caps`: absent from older senders (then unknown, none). `fresh`: ports at the sender's
   * public IPv4 address mapped just now for a new socket (birthday probing's hard side); absent when none.
   */
  | { type: 'call-me-maybe'; candidates: Endpoint[]; nat?: DiscoNat; caps?: number; fresh?: number[] }
  | { type: 'redeem'; token: Uint8Array; newKey: Uint8Array }
  | { type: 'redeem-result'; status: number };

/** What a call-me-maybe says of its sender's NAT mapping (from STUN against two servers). */
export type DiscoNat = 'unknown' | 'independent' | 'varies';
const NAT_CODES: readonly DiscoNat[] = ['unknown', 'independent', 'varies'];
/** caps bit: the sender can take part in birthday probing. */
export const DISCO_CAP_BIRTHDAY = 1;
/** caps bit: the sender's NAT hands out public ports in order (both-hard birthday probing, transport/birthday.ts). */
export const DISCO_CAP_PORTS_IN_ORDER = 2;

export interface DiscoEnvelope {
  sender: Uint8Array;
  nonce: Uint8Array;
  sealed: Uint8Array;
}

export function decodeDiscoEnvelope(b: Uint8Array): DiscoEnvelope | null {
  if (b.length < DISCO_HEADER_LEN + 16) return null;
  for (let i = 0; i < DISCO_MAGIC.length; i++) if (b[i] !== DISCO_MAGIC[i]) return null;
  const m = DISCO_MAGIC.length;
  return { sender: copyBytes(b, m, m + 32), nonce: copyBytes(b, m + 32, m + 56), sealed: b.subarray(DISCO_HEADER_LEN) };
}

export function encodeDiscoEnvelope(sender: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array {
  const out = new Uint8Array(DISCO_HEADER_LEN + sealed.length);
  out.set(DISCO_MAGIC, 0);
  out.set(sender, DISCO_MAGIC.length);
  out.set(nonce, DISCO_MAGIC.length + 32);
  out.set(sealed, DISCO_HEADER_LEN);
  return out;
}

function encodeAddr(e: Endpoint): number[] {
  const ip = parseIp(e.address);
  if (!ip) return [];
  return [ip.version, ...ip.bytes, e.port >> 8, e.port & 0xff];
}

function decodeAddr(b: Uint8Array, off: number): [Endpoint, number] | null {
  const fam = b[off];
  const n = fam === 4 ? 4 : fam === 6 ? 16 : 0;
  if (n === 0 || off + 1 + n + 2 > b.length) return null;
  const address = formatIpAddr({ version: fam as 4 | 6, bytes: b.subarray(off + 1, off + 1 + n) });
  const port = (b[off + 1 + n] << 8) | b[off + 2 + n];
  if (port === 0) return null;
  return [{ address, port }, off + 3 + n];
}

/** A serial field that decodes as none (not a safe integer): lets a ping without a roster carry padding. */
const NO_SERIAL = [255, 255, 255, 255, 255, 255, 255, 255];
/** Bytes a disco datagram adds to its plaintext message: header and the box's tag. */
export const DISCO_OVERHEAD = DISCO_HEADER_LEN + 16;

function serialBytes(serial: number | undefined): number[] {
  if (serial === undefined) return [];
  const hi = Math.floor(serial / 2 ** 32);
  const lo = serial >>> 0;
  return [hi >>> 24, (hi >>> 16) & 255, (hi >>> 8) & 255, hi & 255, lo >>> 24, (lo >>> 16) & 255, (lo >>> 8) & 255, lo & 255];
}

/** The optional roster serial at `off`, if the message carries one (8 more bytes): `{ serial }` or `{}`. */
function serialAt(b: Uint8Array, off: number): { serial?: number } {
  if (b.length < off + 8) return {};
  const v = ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
  const w = ((b[off + 4] << 24) | (b[off + 5] << 16) | (b[off + 6] << 8) | b[off + 7]) >>> 0;
  const serial = v * 2 ** 32 + w;
  return Number.isSafeInteger(serial) ? { serial } : {};
}

export function encodeDiscoMessage(m: DiscoMessage): Uint8Array {
  switch (m.type) {
    case 'ping': {
      const head = [DISCO_PING, 0, ...m.txid, ...serialBytes(m.serial)];
      if (m.padTo === undefined || m.padTo <= head.length) return Uint8Array.from(head);
      if (m.serial === undefined) head.push(...NO_SERIAL);
      const out = new Uint8Array(Math.max(m.padTo, head.length));
      out.set(head);
      return out;
    }
    case 'pong':
      return Uint8Array.from([DISCO_PONG, 0, ...m.txid, ...(m.src ? encodeAddr(m.src) : [0]), ...serialBytes(m.serial)]);
    case 'roster-delta': {
      const out = new Uint8Array(2 + m.delta.length);
      out[0] = DISCO_ROSTER_DELTA;
      out.set(m.delta, 2);
      return out;
    }
    case 'redeem':
      return Uint8Array.from([DISCO_REDEEM, 0, ...m.token, ...m.newKey]);
    case 'redeem-result':
      return Uint8Array.from([DISCO_REDEEM_RESULT, 0, m.status]);
    case 'call-me-maybe': {
      const c = m.candidates.slice(0, DISCO_MAX_CANDIDATES);
      const fresh = (m.fresh ?? []).slice(0, DISCO_MAX_FRESH_PORTS);
      const tail = m.nat === undefined && m.caps === undefined && fresh.length === 0 ? [] : [NAT_CODES.indexOf(m.nat ?? 'unknown'), (m.caps ?? 0) & 0xff];
      const freshBytes = fresh.length === 0 ? [] : [fresh.length, ...fresh.flatMap((p) => [(p >> 8) & 0xff, p & 0xff])];
      return Uint8Array.from([DISCO_CALL_ME_MAYBE, 0, c.length, ...c.flatMap(encodeAddr), ...tail, ...freshBytes]);
    }
  }
}

export function decodeDiscoMessage(b: Uint8Array): DiscoMessage | null {
  if (b.length < 2) return null;
  switch (b[0]) {
    case DISCO_PING:
      if (b.length < 2 + DISCO_TXID_LEN) return null;
      return { type: 'ping', txid: copyBytes(b, 2, 14), ...serialAt(b, 14) };
    case DISCO_PONG: {
      if (b.length < 2 + DISCO_TXID_LEN + 1) return null;
      if (b[14] === 0) return { type: 'pong', txid: copyBytes(b, 2, 14), src: null, ...serialAt(b, 15) };
      const a = decodeAddr(b, 14);
      return a ? { type: 'pong', txid: copyBytes(b, 2, 14), src: a[0], ...serialAt(b, a[1]) } : null;
    }
    case DISCO_ROSTER_DELTA:
      if (b.length < 3 || b.length - 2 > DISCO_MAX_DELTA_BYTES) return null;
      return { type: 'roster-delta', delta: copyBytes(b, 2) };
    case DISCO_CALL_ME_MAYBE: {
      if (b.length < 3) return null;
      const count = Math.min(b[2], DISCO_MAX_CANDIDATES);
      const candidates: Endpoint[] = [];
      let off = 3;
      for (let i = 0; i < count; i++) {
        const a = decodeAddr(b, off);
        if (!a) return null;
        candidates.push(a[0]);
        off = a[1];
      }
      if (b[2] > DISCO_MAX_CANDIDATES || off + 2 > b.length) return { type: 'call-me-maybe', candidates };
      const m: DiscoMessage = { type: 'call-me-maybe', candidates, nat: NAT_CODES[b[off]] ?? 'unknown', caps: b[off + 1] };
      off += 2;
      // Fresh ports: a count past the limit, a port 0 or a short field is left out, not the message.
      const n = b[off] ?? 0;
      if (n === 0 || n > DISCO_MAX_FRESH_PORTS || off + 1 + 2 * n > b.length) return m;
      const fresh: number[] = [];
      for (let i = 0; i < n; i++) fresh.push((b[off + 1 + 2 * i] << 8) | b[off + 2 + 2 * i]);
      return fresh.includes(0) ? m : { ...m, fresh };
    }
    case DISCO_REDEEM:
      if (b.length < 2 + INVITE_TOKEN_LEN + 32) return null;
      return { type: 'redeem', token: copyBytes(b, 2, 18), newKey: copyBytes(b, 18, 50) };
    case DISCO_REDEEM_RESULT:
      if (b.length < 3) return null;
      return { type: 'redeem-result', status: b[2] };
    default:
      return null;
  }
}
