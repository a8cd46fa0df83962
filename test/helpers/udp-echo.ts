// UDP through the tunnel, by content, run inside namespaces by tests:
//   node udp-echo.js serve PORT        -> echoes every datagram back; prints "listening"
//   node udp-echo.js send HOST PORT    -> sends datagrams of several sizes (1 byte up to what MTU 1420
//                                         carries in one IPv4/IPv6 packet), waits for the echoes and
//                                         prints "<echoed>/<sent> identical"
//   node udp-echo.js blast HOST PORT MS -> sends 1,200-byte datagrams as fast as it can for MS
//                                         milliseconds (a load nobody answers); prints "<sent> sent"
// A datagram whose checksum the tunnel got wrong is dropped by the receiving kernel: it shows as missing.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';

const [, , mode, ...rest] = process.argv;

if (mode === 'serve') {
  const sock = dgram.createSocket({ type: 'udp6', ipv6Only: false });
  sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
  sock.bind(Number(rest[0]), '::', () => process.stdout.write('listening\n'));
} else if (mode === 'send') {
  const [host, port] = rest;
  const v6 = host.includes(':');
  const max = 1420 - (v6 ? 40 : 20) - 8;
  const sizes = [1, 2, 3, 64, 511, 512, 1000, max - 1, max];
  const sent = new Map<string, number>();
  const sock = dgram.createSocket(v6 ? 'udp6' : 'udp4');
  let echoed = 0;
  sock.on('message', (msg) => {
    const key = msg.toString('hex');
    const left = sent.get(key) ?? 0;
    if (left > 0) {
      sent.set(key, left - 1);
      echoed++;
    }
  });
  let total = 0;
  for (let round = 0; round < 5; round++) {
    for (const size of sizes) {
      const d = randomBytes(size);
      sent.set(d.toString('hex'), (sent.get(d.toString('hex')) ?? 0) + 1);
      sock.send(d, Number(port), host);
      total++;
    }
  }
  setTimeout(() => {
    process.stdout.write(`${echoed}/${total} identical\n`);
    sock.close();
  }, 1500);
} else if (mode === 'junk') {
  // node udp-echo.js junk HOST PORT N -> N random datagrams of 0–511 bytes, 100 every 10 ms; prints "<N> sent"
  const [host, port, n] = rest;
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  let sent = 0;
  const burst = (): void => {
    for (let i = 0; i < 100 && sent < Number(n); i++, sent++) sock.send(randomBytes(Math.floor(Math.random() * 512)), Number(port), host);
    if (sent < Number(n)) setTimeout(burst, 10);
    else setTimeout(() => {
      process.stdout.write(`${sent} sent\n`);
      sock.close();
    }, 100);
  };
  burst();
} else if (mode === 'blast') {
  const [host, port, ms] = rest;
  const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const d = randomBytes(1200);
  const end = Date.now() + Number(ms);
  let sent = 0;
  const burst = (): void => {
    if (Date.now() >= end) {
      process.stdout.write(`${sent} sent\n`);
      sock.close();
      return;
    }
    for (let i = 0; i < 64; i++) sock.send(d, Number(port), host);
    sent += 64;
    setImmediate(burst);
  };
  burst();
} else {
  process.stderr.write('usage: udp-echo serve PORT | send HOST PORT | blast HOST PORT MS | junk HOST PORT N\n');
  process.exit(1);
}
