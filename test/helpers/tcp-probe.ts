// TCP reachability through the tunnel, run inside namespaces by tests:
//   node tcp-probe.js serve PORT...        -> echoes lines on every PORT (all addresses); prints "listening"
//   node tcp-probe.js connect HOST PORT MS -> one connection, one line echoed within MS: prints
//                                             "ok" or "fail CODE" (ECONNREFUSED, EHOSTUNREACH, timeout, …)
//   node tcp-probe.js hold HOST PORT       -> one connection kept open, a line every 200 ms; prints
//                                             "open", then "echo N" per answer, and "cut CODE" when a
//                                             line is not answered within 2 s or the socket fails
import net from 'node:net';

const [, , mode, ...rest] = process.argv;

if (mode === 'serve') {
  let up = 0;
  for (const port of rest) {
    const server = net.createServer((sock) => {
      sock.on('error', () => sock.destroy());
      sock.pipe(sock);
    });
    server.listen(Number(port), '::', () => {
      if (++up === rest.length) process.stdout.write('listening\n');
    });
  }
} else if (mode === 'connect') {
  const [host, port, ms] = rest;
  const sock = net.connect(Number(port), host);
  const done = (what: string): void => {
    process.stdout.write(`${what}\n`);
    sock.destroy();
    process.exit(0);
  };
  const timer = setTimeout(() => done('fail timeout'), Number(ms));
  sock.on('connect', () => sock.write('hello\n'));
  sock.on('data', (d) => {
    if (d.toString().includes('hello')) {
      clearTimeout(timer);
      done('ok');
    }
  });
  sock.on('error', (err: NodeJS.ErrnoException) => {
    clearTimeout(timer);
    done(`fail ${err.code ?? err.message}`);
  });
} else if (mode === 'hold') {
  const [host, port] = rest;
  const sock = net.connect(Number(port), host);
  let n = 0;
  let answered = 0;
  let lastAnswerAt = Date.now();
  const cut = (code: string): void => {
    process.stdout.write(`cut ${code}\n`);
    sock.destroy();
    process.exit(0);
  };
  sock.on('connect', () => {
    process.stdout.write('open\n');
    lastAnswerAt = Date.now();
    setInterval(() => {
      if (Date.now() - lastAnswerAt > 2000) cut('timeout');
      sock.write(`line ${++n}\n`);
    }, 200);
  });
  let buf = '';
  sock.on('data', (d) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const _ of lines) {
      answered++;
      lastAnswerAt = Date.now();
      if (answered % 5 === 0) process.stdout.write(`echo ${answered}\n`);
    }
  });
  sock.on('error', (err: NodeJS.ErrnoException) => cut(err.code ?? err.message));
  sock.on('close', () => cut('closed'));
} else {
  process.stderr.write('usage: tcp-probe serve PORT... | connect HOST PORT MS | hold HOST PORT\n');
  process.exit(2);
}
