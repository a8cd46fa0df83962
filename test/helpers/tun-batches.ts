// How the TUN reader hands packets over, run inside a namespace by test/integration/tun-reader:
//   node tun-batches.js NAME offload|plain
// Opens TUN device NAME (10.99.0.1/24, IPv6 off), then sends UDP datagrams to 10.99.0.2:9 (routed
// into the device) in two phases and prints one JSON line:
//   sparse: 12 datagrams 30 ms apart;
//   burst:  200 datagrams sent by another process while this one's event loop is blocked, so they
//           all wait in the device's queue when it next reads;
//   readNow: one datagram queued the same way, then readNow() (and once more with nothing queued).
// For each phase: the datagrams read and the batch sizes they came in (counting only these
// datagrams, by their marker), and how the reader's sparse-wakeup and empty-read counters moved.
import dgram from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { LinuxTun } from '../../src/tun/tun-device.js';

const [, , name, mode] = process.argv;
const SPARSE = 12;
const BURST = 200;
const MARK = 0x6d65; // 'me': the first two payload bytes of every datagram sent here

const tun = LinuxTun.open(name, mode === 'offload');
execFileSync('sysctl', ['-qw', 'net.ipv6.conf.all.disable_ipv6=1']);
execFileSync('ip', ['addr', 'add', '10.99.0.1/24', 'dev', tun.name]);
execFileSync('ip', ['link', 'set', tun.name, 'up']);

let batches: number[] = [];
let seen = new Set<number>();
tun.start({
  onPacket: () => undefined,
  onPackets: (buf, offsets, lengths, count) => {
    let ours = 0;
    for (let i = 0; i < count; i++) {
      const off = offsets[i];
      // IPv4, UDP, payload (after the 20-byte IP and 8-byte UDP headers) starting with the marker.
      if (lengths[i] < 32 || buf[off] !== 0x45 || buf[off + 9] !== 17) continue;
      if (((buf[off + 28] << 8) | buf[off + 29]) !== MARK) continue;
      seen.add((buf[off + 30] << 8) | buf[off + 31]);
      ours++;
    }
    if (ours > 0) batches.push(ours);
  },
  onBatchEnd: () => undefined,
  onError: (errno) => {
    process.stderr.write(`tun read failed: errno ${errno}\n`);
    process.exit(1);
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const datagram = (seq: number) => Buffer.from([MARK >> 8, MARK & 0xff, seq >> 8, seq & 0xff, 0, 0, 0, 0]);

interface Phase {
  read: number;
  batches: number[];
  sparseWakeups: number;
  emptyReads: number;
}

async function phase(body: () => Promise<void>, expect: number): Promise<Phase> {
  batches = [];
  seen = new Set();
  const before = tun.stats();
  await body();
  for (let waited = 0; seen.size < expect && waited < 3000; waited += 10) await sleep(10);
  await sleep(50);
  const after = tun.stats();
  return { read: seen.size, batches, sparseWakeups: after.sparseWakeups - before.sparseWakeups, emptyReads: after.emptyReads - before.emptyReads };
}

const sock = dgram.createSocket('udp4');
await new Promise<void>((r) => sock.bind(0, '10.99.0.1', r));
// Something first, so the reader has settled into its mode for sparse traffic.
sock.send(datagram(0xffff), 9, '10.99.0.2');
await sleep(50);
const sparse = await phase(async () => {
  for (let i = 0; i < SPARSE; i++) {
    sock.send(datagram(i), 9, '10.99.0.2');
    await sleep(30);
  }
}, SPARSE);
const script = `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(("10.99.0.1", 0))\nfor i in range(${BURST}):\n    s.sendto(bytes([${MARK >> 8}, ${MARK & 0xff}, i >> 8, i & 255, 0, 0, 0, 0]), ("10.99.0.2", 9))\n`;
const burst = await phase(async () => {
  execFileSync('python3', ['-c', script]); // blocks this event loop: nothing is read meanwhile
}, BURST);
// readNow: a datagram already queued is handed over before the call returns; with nothing queued,
// nothing is (and nothing breaks).
const one = `import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(("10.99.0.1", 0))\ns.sendto(bytes([${MARK >> 8}, ${MARK & 0xff}, 1, 244, 0, 0, 0, 0]), ("10.99.0.2", 9))\n`;
batches = [];
seen = new Set();
execFileSync('python3', ['-c', one]);
tun.readNow();
const readNow = { atOnce: seen.has(500), batches };
batches = [];
tun.readNow();
const readNowEmpty = { batches };
await sleep(50);
process.stdout.write(`${JSON.stringify({ sparse, burst, readNow, readNowEmpty, drops: tun.drops() })}\n`);
sock.close();
tun.close();
process.exit(0);
