// A TCP bulk transfer with an end-to-end SHA-256, run inside namespaces by tests:
//   node tcp-transfer.js serve PORT          -> prints "<bytes> <sha256>" when the sender closes
//   node tcp-transfer.js send HOST PORT BYTES -> prints "<bytes> <sha256>" of what it sent
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

const [, , mode, ...rest] = process.argv;

if (mode === 'serve') {
  const server = net.createServer((sock) => {
    const h = createHash('sha256');
    let n = 0;
    sock.on('data', (d) => {
      h.update(d);
      n += d.length;
    });
    sock.on('end', () => {
      process.stdout.write(`${n} ${h.digest('hex')}\n`);
      sock.end();
      server.close();
    });
  });
  server.listen(Number(rest[0]), '::', () => process.stdout.write('listening\n'));
} else if (mode === 'send') {
  const [host, port, bytes] = rest;
  let left = Number(bytes);
  const h = createHash('sha256');
  const chunk = randomBytes(64 * 1024);
  const sock = net.connect(Number(port), host, () => {
    const write = (): void => {
      while (left > 0) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        chunk[0]++; // vary the content
        h.update(piece);
        left -= piece.length;
        if (!sock.write(Buffer.from(piece))) {
          sock.once('drain', write);
          return;
        }
      }
      sock.end();
    };
    write();
  });
  sock.on('close', () => process.stdout.write(`${bytes} ${h.digest('hex')}\n`));
  sock.on('error', (e) => {
    process.stderr.write(`send failed: ${e.message}\n`);
    process.exit(1);
  });
} else {
  process.stderr.write('usage: tcp-transfer serve PORT | send HOST PORT BYTES\n');
  process.exit(1);
}
