// WireGuard message layouts (whitepaper §5.4). All integers little-endian.
//
// Handshake initiation, type 1, 148 bytes
//   off  len  field
//     0    1  type = 1
//     1    3  reserved (zero)
//     4    4  sender index
//     8   32  unencrypted ephemeral
//    40   48  encrypted static (32 + 16 tag)
//    88   28  encrypted timestamp (12 + 16 tag)
//   116   16  mac1
//   132   16  mac2
//
// Handshake response, type 2, 92 bytes
//     0    1  type = 2          4  4  sender index       8  4  receiver index
//    12   32  unencrypted ephemeral                     44 16  encrypted nothing
//    60   16  mac1                                      76 16  mac2
//
// Cookie reply, type 3, 64 bytes
//     0    1  type = 3          4  4  receiver index
//     8   24  nonce            32 32  encrypted cookie (16 + 16 tag)
//
// Transport data, type 4, 32 bytes or more
//     0    1  type = 4          4  4  receiver index     8  8  counter
//    16    n  encrypted packet (padded plaintext + 16 tag); n = 16 is a keepalive

export const MSG_INITIATION = 1;
export const MSG_RESPONSE = 2;
export const MSG_COOKIE_REPLY = 3;
export const MSG_TRANSPORT = 4;

export const INITIATION_SIZE = 148;
export const RESPONSE_SIZE = 92;
export const COOKIE_REPLY_SIZE = 64;
export const TRANSPORT_HEADER_SIZE = 16;
/** Room a transport message needs after its plaintext when sealed in place: up to 15 bytes of padding and the 16-byte tag, rounded to 32. */
export const TRANSPORT_TAILROOM = 32;
export const TRANSPORT_MIN_SIZE = 32;

export const OFF_TYPE = 0;
export const OFF_SENDER = 4;
export const OFF_RECEIVER = 8; // response only
export const OFF_INIT_EPHEMERAL = 8;
export const OFF_INIT_STATIC = 40;
export const OFF_INIT_TIMESTAMP = 88;
export const OFF_INIT_MAC1 = 116;
export const OFF_INIT_MAC2 = 132;
export const OFF_RESP_EPHEMERAL = 12;
export const OFF_RESP_EMPTY = 44;
export const OFF_RESP_MAC1 = 60;
export const OFF_RESP_MAC2 = 76;
export const OFF_COOKIE_RECEIVER = 4;
export const OFF_COOKIE_NONCE = 8;
export const OFF_COOKIE_COOKIE = 32;
export const OFF_DATA_RECEIVER = 4;
export const OFF_DATA_COUNTER = 8;
export const OFF_DATA_PAYLOAD = 16;

export const ENCRYPTED_STATIC_LEN = 48;
export const ENCRYPTED_TIMESTAMP_LEN = 28;
export const ENCRYPTED_NOTHING_LEN = 16;
export const COOKIE_NONCE_LEN = 24;
export const ENCRYPTED_COOKIE_LEN = 32;

/** The message type if the header is a WireGuard one (type 1–4, then three zero bytes), else 0. */
export function wireguardType(b: Uint8Array): number {
  if (b.length < 4) return 0;
  const t = b[0];
  if (t < 1 || t > 4 || b[1] !== 0 || b[2] !== 0 || b[3] !== 0) return 0;
  return t;
}

/** True when the datagram's length is valid for its WireGuard type. */
export function wireguardSizeOk(type: number, len: number): boolean {
  switch (type) {
    case MSG_INITIATION:
      return len === INITIATION_SIZE;
    case MSG_RESPONSE:
      return len === RESPONSE_SIZE;
    case MSG_COOKIE_REPLY:
      return len === COOKIE_REPLY_SIZE;
    case MSG_TRANSPORT:
      return len >= TRANSPORT_MIN_SIZE;
    default:
      return false;
  }
}

export function readU32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

/** Reads a 64-bit LE counter; returns -1 when it is 2^53 or more (unreachable within a key's lifetime). */
export function readCounter(b: Uint8Array, off: number): number {
  const lo = readU32(b, off);
  const hi = readU32(b, off + 4);
  if (hi >= 0x20_0000) return -1;
  return hi * 0x1_0000_0000 + lo;
}

export function writeCounter(b: Uint8Array, off: number, n: number): void {
  writeU32(b, off, n >>> 0);
  writeU32(b, off + 4, Math.floor(n / 0x1_0000_0000));
}

/** Writes the 4-byte header (type and three reserved zero bytes). */
export function writeHeader(b: Uint8Array, type: number): void {
  b[0] = type;
  b[1] = 0;
  b[2] = 0;
  b[3] = 0;
}
