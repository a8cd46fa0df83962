// Builds small IPv4/IPv6 packets for tests.
import { parseIp } from '../../src/tunnel/cidr.js';

export function ipv4Packet(src: string, dst: string, payload: Uint8Array = new Uint8Array(8)): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(parseIp(src)!.bytes, 12);
  p.set(parseIp(dst)!.bytes, 16);
  p.set(payload, 20);
  return p;
}

export function ipv6Packet(src: string, dst: string, payload: Uint8Array = new Uint8Array(8)): Uint8Array {
  const p = new Uint8Array(40 + payload.length);
  p[0] = 0x60;
  p[4] = payload.length >> 8;
  p[5] = payload.length & 0xff;
  p[6] = 17;
  p[7] = 64;
  p.set(parseIp(src)!.bytes, 8);
  p.set(parseIp(dst)!.bytes, 24);
  p.set(payload, 40);
  return p;
}
