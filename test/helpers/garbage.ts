// Sends hostile datagrams at a meshd port, bounded in count and time (run inside a test namespace):
//   node garbage.js HOST PORT SECONDS [PCAP]
// random bytes of every length; WireGuard-shaped messages with random bodies; and, from a pcap of
// real traffic: exact replays, truncations, bit flips, and a flood of replayed initiations.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';

const [host, portArg, secondsArg, pcap] = process.argv.slice(2);
const port = Number(portArg);
const deadline = Date.now() + Number(secondsArg) * 1000;
const MAX_DATAGRAMS = 200_000;
const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
let sent = 0;

/** UDP payloads sent to `port` in a pcap (Ethernet, IPv4). */
function payloadsFromPcap(file: string): Buffer[] {
  const b = readFileSync(file);
  const le = b.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const out: Buffer[] = [];
  for (let off = 24; off + 16 <= b.length; ) {
    const incl = u32(off + 8);
    const pkt = b.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (pkt.length < 14 + 20 + 8 || pkt.readUInt16BE(12) !== 0x0800) continue;
    const ihl = (pkt[14] & 0x0f) * 4;
    if (pkt[14 + 9] !== 17) continue;
    const udp = 14 + ihl;
    if (pkt.readUInt16BE(udp + 2) !== port) continue;
    out.push(Buffer.from(pkt.subarray(udp + 8, udp + pkt.readUInt16BE(udp + 4))));
  }
  return out;
}

function send(d: Uint8Array): Promise<void> {
  sent++;
  return new Promise((r) => sock.send(d, port, host, () => r()));
}

function wgShaped(type: number, len: number): Buffer {
  const m = randomBytes(len);
  m[0] = type;
  m[1] = m[2] = m[3] = 0;
  return m;
}

const real = pcap ? payloadsFromPcap(pcap) : [];
const initiations = real.filter((p) => p[0] === 1 && p.length === 148);
const transport = real.filter((p) => p[0] === 4);

async function main(): Promise<void> {
  while (Date.now() < deadline && sent < MAX_DATAGRAMS) {
    for (let len = 0; len <= 1500; len += 7) await send(randomBytes(len));
    for (const [type, len] of [
      [1, 148],
      [2, 92],
      [3, 64],
      [4, 32],
      [4, 1200],
      [1, 147],
      [2, 93],
      [4, 31],
    ]) {
      for (let i = 0; i < 20; i++) await send(wgShaped(type, len));
    }
    for (const p of transport.slice(0, 200)) {
      await send(p); // exact replay: authentic but already seen
      await send(p.subarray(0, Math.max(0, p.length - 1 - Math.floor(Math.random() * p.length))));
      const f = Buffer.from(p);
      f[Math.floor(Math.random() * f.length)] ^= 1 << Math.floor(Math.random() * 8);
      await send(f);
    }
    for (let i = 0; i < 200; i++) for (const p of initiations) await send(p); // handshake flood
  }
  process.stdout.write(`sent ${sent} datagrams (${real.length} captured, ${initiations.length} initiations, ${transport.length} transport)\n`);
  sock.close();
}

void main();
