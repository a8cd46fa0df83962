// A dnsperf-style load client (run inside a namespace by bench/dns.ts):
//   node dns-client.js SERVER SECONDS WINDOW NAMES_FILE
// keeps WINDOW queries in flight over UDP for SECONDS (a lost one is re-counted after 1 s), names
// taken in turn from NAMES_FILE ("NAME TYPE" lines); prints one JSON line: queries answered per
// second, latency percentiles (ms), answers by rcode, and timeouts.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';

const [, , server, secondsArg, windowArg, namesFile] = process.argv;
const seconds = Number(secondsArg);
const window = Number(windowArg);
const queries = readFileSync(namesFile, 'utf8').trim().split('\n').map((l) => l.split(' ') as [string, 'A' | 'AAAA' | 'PTR']);
const encoded = queries.map(([name, type]) => dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] }));
const sock = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
const inflight = new Map<number, number>();
const latencies: number[] = [];
const rcodes: Record<string, number> = {};
let next = 0;
let id = 0;
let timeouts = 0;
let stopping = false;
const start = performance.now();

function send(): void {
  if (stopping) return;
  id = (id + 1) & 0xffff;
  while (inflight.has(id)) id = (id + 1) & 0xffff;
  const q = Buffer.from(encoded[next++ % encoded.length]);
  q.writeUInt16BE(id, 0);
  inflight.set(id, performance.now());
  sock.send(q, 53, server);
}

sock.on('message', (msg) => {
  const qid = msg.readUInt16BE(0);
  const sent = inflight.get(qid);
  if (sent === undefined) return;
  inflight.delete(qid);
  latencies.push(performance.now() - sent);
  const rcode = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'][msg[3] & 15] ?? String(msg[3] & 15);
  rcodes[rcode] = (rcodes[rcode] ?? 0) + 1;
  send();
});

sock.bind(0, () => {
  for (let i = 0; i < window; i++) send();
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [k, t] of inflight) {
      if (now - t > 1000) {
        inflight.delete(k);
        timeouts++;
        send();
      }
    }
  }, 100);
  setTimeout(() => {
    stopping = true;
    clearInterval(sweep);
    const elapsed = (performance.now() - start) / 1000;
    const s = latencies.sort((a, b) => a - b);
    const pct = (p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
    process.stdout.write(JSON.stringify({ qps: s.length / elapsed, answered: s.length, timeouts, rcodes, p50: pct(50), p90: pct(90), p99: pct(99), max: s[s.length - 1] ?? NaN }) + '\n');
    sock.close();
  }, seconds * 1000);
});
