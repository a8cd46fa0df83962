// UDP segmentation offload through a real TUN device, run inside a namespace by
// test/integration/tun-uso:   node tun-uso.js NAME
// Opens TUN device NAME with offloads (10.98.0.1/24, fd98::1/64) and prints one JSON line:
//   uso: whether the kernel took TUN_F_USO4/6;
//   read: for a python3 send with UDP_SEGMENT (9,500 bytes in 1,000-byte segments) over IPv4 and
//         IPv6, what the reader handed over: each datagram's UDP payload length, whether its IP and
//         UDP checksums are right, its IPv4 ID, the batches they came in, and whether the payloads
//         put together are the bytes sent;
//   write: after writeBatch of one flow's 8 datagrams (1,200 bytes, the last 300), one datagram of
//         another flow and one of the first flow with a wrong UDP checksum, per family: what two
//         sockets on the device's own address received, in order, and how many TUN writes it took.
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { LinuxTun, TUN_HEADROOM, TUN_TAILROOM } from '../../src/tun/tun-device.js';
import { checksum, foldSum, sum16 } from '../../src/wire/checksum.js';

const [, , name] = process.argv;
const tun = LinuxTun.open(name, true);
execFileSync('ip', ['addr', 'add', '10.98.0.1/24', 'dev', tun.name]);
execFileSync('ip', ['addr', 'add', 'fd98::1/64', 'dev', tun.name, 'nodad']);
execFileSync('ip', ['link', 'set', tun.name, 'up']);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SENT = 9_500;
const SEGMENT = 1_000;
const PORT_SEG = 7001; // the UDP_SEGMENT sends' destination port: what the reader looks for

/** The pseudo-header sum of an IP packet at `p` carrying `l4len` bytes of UDP. */
function pseudo(p: Uint8Array, v6: boolean, l4len: number): number {
  return (v6 ? sum16(p, 8, 32) : sum16(p, 12, 8)) + 17 + l4len;
}
function udpChecksumOk(p: Uint8Array, iphl: number, v6: boolean): boolean {
  return foldSum(sum16(p, iphl, p.length - iphl, pseudo(p, v6, p.length - iphl))) === 0xffff;
}

interface Seen {
  len: number;
  ipOk: boolean;
  udpOk: boolean;
  id: number;
}
let batches: number[] = [];
const seen: Record<'v4' | 'v6', Seen[]> = { v4: [], v6: [] };
const payloads: Record<'v4' | 'v6', Buffer[]> = { v4: [], v6: [] };
tun.start({
  onPacket: () => undefined,
  onPackets: (buf, offsets, lengths, count) => {
    let ours = 0;
    for (let i = 0; i < count; i++) {
      const p = buf.subarray(offsets[i], offsets[i] + lengths[i]);
      const v6 = p[0] >> 4 === 6;
      const iphl = v6 ? 40 : (p[0] & 15) * 4;
      if ((v6 ? p[6] : p[9]) !== 17 || p.length < iphl + 8) continue;
      if (((p[iphl + 2] << 8) | p[iphl + 3]) !== PORT_SEG) continue;
      ours++;
      const fam = v6 ? 'v6' : 'v4';
      seen[fam].push({ len: p.length - iphl - 8, ipOk: v6 || foldSum(sum16(p, 0, iphl)) === 0xffff, udpOk: udpChecksumOk(p, iphl, v6), id: v6 ? 0 : (p[4] << 8) | p[5] });
      payloads[fam].push(Buffer.from(p.subarray(iphl + 8)));
    }
    if (ours > 0) batches.push(ours);
  },
  onBatchEnd: () => undefined,
  onError: (errno) => {
    process.stderr.write(`tun read failed: errno ${errno}\n`);
    process.exit(1);
  },
});

// The bytes sent with UDP_SEGMENT: byte i is i mod 251, so any reordering or loss shows.
const pattern = Buffer.from(Array.from({ length: SENT }, (_, i) => i % 251));
const read: Record<string, unknown> = {};
for (const [fam, dst, af] of [['v4', '10.98.0.2', 'AF_INET'], ['v6', 'fd98::2', 'AF_INET6']] as const) {
  batches = [];
  const py = `import socket\ns = socket.socket(socket.${af}, socket.SOCK_DGRAM)\ns.setsockopt(socket.SOL_UDP, 103, ${SEGMENT})\ns.sendto(bytes(i % 251 for i in range(${SENT})), ("${dst}", ${PORT_SEG}))\n`;
  execFileSync('python3', ['-c', py]);
  for (let waited = 0; seen[fam].length < Math.ceil(SENT / SEGMENT) && waited < 3000; waited += 10) await sleep(10);
  await sleep(50);
  read[fam] = { datagrams: seen[fam], batches, intact: Buffer.concat(payloads[fam]).equals(pattern) };
}

/** A UDP datagram from `src`:5000 to `dst`:`port` with `payload` (every byte `fill`), checksums right unless `bad`. */
function datagram(v6: boolean, src: string, dst: string, port: number, payload: number, fill: number, bad = false): Uint8Array {
  const iphl = v6 ? 40 : 20;
  const room = new Uint8Array(TUN_HEADROOM + iphl + 8 + payload + TUN_TAILROOM);
  const p = room.subarray(TUN_HEADROOM, TUN_HEADROOM + iphl + 8 + payload);
  const addr = (a: string): number[] =>
    v6
      ? a
          .replace('::', ':0:0:0:0:0:0:')
          .split(':')
          .flatMap((h) => [parseInt(h || '0', 16) >> 8, parseInt(h || '0', 16) & 255])
      : a.split('.').map(Number);
  if (v6) {
    p.set([0x60, 0, 0, 0, (8 + payload) >> 8, (8 + payload) & 255, 17, 64]);
    p.set(addr(src), 8);
    p.set(addr(dst), 24);
  } else {
    const total = iphl + 8 + payload;
    p.set([0x45, 0, total >> 8, total & 255, 0x12, fill, 0x40, 0, 64, 17, 0, 0]);
    p.set(addr(src), 12);
    p.set(addr(dst), 16);
    const c = checksum(sum16(p, 0, 20));
    p[10] = c >> 8;
    p[11] = c & 255;
  }
  const u = iphl;
  p.set([5000 >> 8, 5000 & 255, port >> 8, port & 255, (8 + payload) >> 8, (8 + payload) & 255, 0, 0], u);
  p.fill(fill, u + 8);
  let c = checksum(sum16(p, u, p.length - u, pseudo(p, v6, 8 + payload)));
  if (c === 0) c = 0xffff;
  if (bad) c ^= 0x0101;
  p[u + 6] = c >> 8;
  p[u + 7] = c & 255;
  return p;
}

const write: Record<string, unknown> = {};
for (const [fam, src, dst] of [['v4', '10.98.0.2', '10.98.0.1'], ['v6', 'fd98::2', 'fd98::1']] as const) {
  const v6 = fam === 'v6';
  const got: Record<number, { len: number; fill: number }[]> = { 7101: [], 7102: [] };
  const socks = await Promise.all(
    [7101, 7102].map(async (port) => {
      const s = dgram.createSocket(v6 ? 'udp6' : 'udp4');
      s.on('message', (m) => got[port].push({ len: m.length, fill: m[0] }));
      await new Promise<void>((r) => s.bind(port, dst, r));
      return s;
    }),
  );
  const packets = [
    ...Array.from({ length: 8 }, (_, i) => datagram(v6, src, dst, 7101, i === 7 ? 300 : 1200, i + 1)),
    datagram(v6, src, dst, 7102, 500, 0xaa),
    datagram(v6, src, dst, 7101, 1200, 0xbb, true),
  ];
  const before = tun.stats().writes;
  const failed = tun.writeBatch(packets, packets.length);
  const writes = tun.stats().writes - before;
  for (let waited = 0; got[7101].length + got[7102].length < 9 && waited < 3000; waited += 10) await sleep(10);
  await sleep(100);
  for (const s of socks) s.close();
  write[fam] = { failed, writes, flow: got[7101], other: got[7102] };
}

process.stdout.write(`${JSON.stringify({ uso: tun.uso, read, write })}\n`);
tun.close();
process.exit(0);
