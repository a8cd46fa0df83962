// The hard side's birthday sockets (src/transport/birthday-sockets.ts): probing sockets are the
// addon's, small; the one kept grows full-size buffers on the same socket, so nothing queued to it is
// lost; node:dgram sockets where no batched socket can be opened. Fakes for the bookkeeping, real
// loopback sockets for what a peer would notice.
import t, { type Test } from 'tap';
import dgram from 'node:dgram';
import { Worker } from 'node:worker_threads';
import { BirthdaySockets, MAX_BATCHED_BIRTHDAY_SOCKETS, type BatchedSocket } from '../src/transport/birthday-sockets.js';
import { NativeUdpConn, SMALL_SIZES } from '../src/transport/native-udp.js';
import type { Endpoint } from '../src/tunnel/endpoint.js';
import type { DatagramRun } from '../src/tunnel/outbox.js';

class FakeBatched implements BatchedSocket {
  queued: { data: number[]; to: Endpoint }[] = [];
  runs: { count: number; to: Endpoint }[] = [];
  flushes = 0;
  grows = 0;
  closed = false;
  full = false;
  growFails = false;
  readonly stats = { sendErrors: 0, sendDropped: 0 };
  constructor(
    readonly port: number,
    readonly id: number,
  ) {}
  queue(data: Uint8Array, to: Endpoint): void {
    this.queued.push({ data: [...data], to });
  }
  queueRun(run: DatagramRun, to: Endpoint): void {
    this.runs.push({ count: run.count, to });
  }
  flush(): void {
    this.flushes++;
  }
  grow(): boolean {
    this.grows++;
    if (this.growFails) {
      this.close();
      return false;
    }
    this.full = true;
    return true;
  }
  close(): void {
    this.closed = true;
  }
}

/** The UDP ports this process has bound (from outside: ss). */
async function boundPorts(): Promise<number[]> {
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync('ss', ['-Hunap'], { encoding: 'utf8' });
  const mine = out.split('\n').filter((l) => l.includes(`pid=${process.pid},`));
  return mine.map((l) => Number(/:(\d+)\s/.exec(l)?.[1] ?? NaN)).sort((a, b) => a - b);
}

const turn = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** BirthdaySockets whose batched sockets are fakes (kept in `made`), closed with the test. */
function withFakeBatched(t: Test): { made: FakeBatched[]; socks: BirthdaySockets } {
  const made: FakeBatched[] = [];
  let port = 40000;
  const socks = new BirthdaySockets(() => undefined, (id) => {
    const b = new FakeBatched(port++, id);
    made.push(b);
    return b;
  });
  t.teardown(() => socks.closeAll());
  return { made, socks };
}

t.test('probing sockets are batched from the start; the one kept grows, a turn later, in place', async (t) => {
  const { made, socks } = withFakeBatched(t);
  const ids = await socks.open('p1', 3);
  t.same(ids, made.map((b) => b.id), 'each opened batched, with its id for the endpoints it reports');
  t.equal(socks.size, 3);
  t.equal(socks.batched, 0, 'none full-size while probing');

  const to: Endpoint = { address: '127.0.0.1', port: 9, sock: ids[1] };
  socks.send(new Uint8Array([1, 2, 3]), to);
  t.same(made[1].queued, [{ data: [1, 2, 3], to }], 'a probe is queued on its socket');
  t.equal(made[1].flushes, 0, 'not sent before the flush');
  socks.flush();
  socks.flush();
  t.equal(made[1].flushes, 1, 'one flush for what was queued');

  socks.keep('p1', [ids[0], ids[1]]);
  t.equal(made[2].closed, true, 'the one not kept is closed');
  await turn();
  t.equal(made[0].grows + made[1].grows, 0, 'two left (both met): neither grows');
  socks.keep('p1', [ids[1]]);
  t.equal(made[0].closed, true);
  t.equal(made[1].grows, 0, 'one left: not in the same turn (keep comes from inside its receive callback)');
  await turn();
  t.equal(made[1].grows, 1, 'grown a turn later');
  t.equal(made[1].closed, false, 'the same socket, not a new one');
  t.equal(socks.batched, 1);
  t.equal(socks.grownTotal, 1);
  socks.keep('p1', [ids[1]]);
  await turn();
  t.equal(made[1].grows, 1, 'kept again: grows once only');

  const run: DatagramRun = { to, peerId: 'p1', buf: new Uint8Array(64), offsets: new Int32Array([0, 32]), lengths: new Int32Array([32, 32]), start: 0, count: 2 };
  t.equal(socks.queueRun(run, to), true, 'a run is queued where it lies');
  t.same(made[1].runs, [{ count: 2, to }]);
  t.equal(socks.queueRun(run, { address: '127.0.0.1', port: 9, sock: 999 }), false, 'no such socket: the caller sends one by one');
  made[1].stats.sendErrors = 2;
  t.equal(socks.sendFailed, 2, "the batched socket's failures count");
  socks.close('p1');
  t.equal(made[1].closed, true, 'closed with the peer');
  t.equal(socks.size, 0);
  t.equal(socks.sendFailed, 2, 'and are kept after it closed');
});

t.test('a socket closed before its turn to grow does not grow', async (t) => {
  const { made, socks } = withFakeBatched(t);
  const [id] = await socks.open('p1', 1);
  socks.keep('p1', [id]);
  socks.close('p1');
  await turn();
  t.equal(made[0].grows, 0);
  t.equal(made[0].closed, true);
});

t.test('a socket that cannot grow is closed and let go', async (t) => {
  const { made, socks } = withFakeBatched(t);
  const [id] = await socks.open('p1', 1);
  made[0].growFails = true;
  socks.keep('p1', [id]);
  await turn();
  t.equal(made[0].closed, true);
  t.equal(socks.size, 0, 'the peer has no socket left (probing starts over)');
  t.equal(socks.grownTotal, 0);
});

t.test(`no more than ${MAX_BATCHED_BIRTHDAY_SOCKETS} kept sockets grow at once`, async (t) => {
  const { made, socks } = withFakeBatched(t);
  for (let p = 0; p < MAX_BATCHED_BIRTHDAY_SOCKETS + 2; p++) {
    const [id] = await socks.open(`p${p}`, 1);
    socks.keep(`p${p}`, [id]);
    await turn();
  }
  t.equal(made.filter((b) => b.grows > 0).length, MAX_BATCHED_BIRTHDAY_SOCKETS);
  t.equal(socks.batched, MAX_BATCHED_BIRTHDAY_SOCKETS);
  t.equal(socks.size, MAX_BATCHED_BIRTHDAY_SOCKETS + 2, 'the others stay open, small');
  socks.close('p0');
  const last = made[made.length - 1];
  socks.keep(`p${MAX_BATCHED_BIRTHDAY_SOCKETS + 1}`, [last.id]);
  await turn();
  t.equal(last.grows, 1, 'once one is let go, another kept one can grow');
});

t.test('without batched sockets (or when one cannot open) node:dgram sockets probe and carry on', async (t) => {
  const got: Endpoint[] = [];
  let refuse = true;
  const socks = new BirthdaySockets((_m, from) => got.push(from), () => (refuse ? null : new FakeBatched(1, 1)));
  t.teardown(() => socks.closeAll());
  const portsBefore = await boundPorts();
  const [id] = await socks.open('p1', 1);
  refuse = false;
  const ports = (await boundPorts()).filter((p) => !portsBefore.includes(p));
  t.equal(ports.length, 1, 'a dgram socket bound');
  socks.keep('p1', [id]);
  await turn();
  t.equal(socks.batched, 0);
  t.same((await boundPorts()).filter((p) => !portsBefore.includes(p)), ports, 'kept on its port');
  const to: Endpoint = { address: '127.0.0.1', port: 0, sock: id };
  const run: DatagramRun = { to, peerId: 'p1', buf: new Uint8Array(8), offsets: new Int32Array([0]), lengths: new Int32Array([8]), start: 0, count: 1 };
  t.equal(socks.queueRun(run, to), false, 'runs go datagram by datagram');

  const c = dgram.createSocket('udp4');
  t.teardown(() => c.close());
  await new Promise<void>((r) => c.send(Buffer.from('hi'), ports[0], '127.0.0.1', () => r()));
  for (let i = 0; i < 50 && got.length === 0; i++) await sleep(10);
  t.equal(got[0]?.sock, id, 'a datagram to it arrives tagged with its socket');

  // And it sends, from that port.
  const rx = dgram.createSocket('udp4');
  t.teardown(() => rx.close());
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  const from: number[] = [];
  rx.on('message', (_m, rinfo) => from.push(rinfo.port));
  socks.send(new Uint8Array([7]), { address: '127.0.0.1', port: rx.address().port, sock: id });
  for (let i = 0; i < 50 && from.length === 0; i++) await sleep(10);
  t.same(from, ports, 'sent from the kept port');
});

/** Real small sockets through the addon, as the daemon opens them; `got` counts what arrives, by socket id. */
function withNative(t: Test): { socks: BirthdaySockets; got: Map<number, number> } {
  const got = new Map<number, number>();
  const socks = new BirthdaySockets(
    () => undefined,
    (id) =>
      NativeUdpConn.bind(
        0,
        {
          onMessage: (_m, from) => {
            if (from.sock !== undefined) got.set(from.sock, (got.get(from.sock) ?? 0) + 1);
          },
          onBatchEnd: () => undefined,
        },
        0,
        id,
        SMALL_SIZES,
      ),
  );
  t.teardown(() => socks.closeAll());
  return { socks, got };
}

/**
 * Sends `count` 100-byte datagrams to 127.0.0.1:`port` from another thread, `gapUs` apart; resolves
 * with how many the kernel took. `started` resolves when the first has gone.
 */
function streamFromAnotherThread(port: number, count: number, gapUs: number): { started: Promise<void>; done: Promise<number> } {
  const w = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
     const dgram = require('node:dgram');
     const s = dgram.createSocket('udp4');
     const payload = Buffer.alloc(100);
     let sent = 0, i = 0;
     const next = () => {
       if (i === workerData.count) { s.close(); parentPort.postMessage({ done: sent }); return; }
       i++;
       s.send(payload, workerData.port, '127.0.0.1', (err) => { if (!err) sent++; if (sent === 1) parentPort.postMessage({ started: true }); });
       const until = process.hrtime.bigint() + BigInt(workerData.gapUs * 1000);
       while (process.hrtime.bigint() < until);
       setImmediate(next);
     };
     next();`,
    { eval: true, workerData: { port, count, gapUs } },
  );
  let onStarted!: () => void;
  const started = new Promise<void>((r) => (onStarted = r));
  const done = new Promise<number>((resolve, reject) => {
    w.on('message', (m: { started?: boolean; done?: number }) => {
      if (m.started) onStarted();
      if (m.done !== undefined) resolve(m.done);
    });
    w.on('error', reject);
  });
  return { started, done };
}

t.test('the kept socket grows without losing a datagram that arrives meanwhile', async (t) => {
  const { socks, got } = withNative(t);
  const portsBefore = await boundPorts();
  const ids = await socks.open('p1', 4);
  t.equal(ids.length, 4);
  const ports = (await boundPorts()).filter((p) => !portsBefore.includes(p));
  t.same(ports, ids.map((id) => socks.port(id) ?? -1).sort((a, b) => a - b), 'four sockets through the addon, each on its port');
  const probe = dgram.createSocket('udp4');
  t.teardown(() => probe.close());
  for (const id of ids) await new Promise<void>((r) => probe.send(Buffer.from('?'), socks.port(id)!, '127.0.0.1', () => r()));
  for (let i = 0; i < 100 && got.size < 4; i++) await sleep(10);
  t.same([...got.keys()].sort(), [...ids].sort(), 'each receives, tagged with its id');
  const keep = ids[2];
  const port = socks.port(keep)!;
  got.clear();

  // A datagram every 20 µs from another thread, before, during and after the grow.
  const stream = streamFromAnotherThread(port, 6000, 20);
  await stream.started;
  await sleep(40);
  socks.keep('p1', [keep]);
  const sent = await stream.done;
  for (let i = 0; i < 200 && (got.get(keep) ?? 0) < sent; i++) await sleep(10);
  t.equal(socks.batched, 1, 'it has grown');
  t.equal(got.get(keep), sent, `every datagram arrived (${sent} sent across the grow)`);
  const now = await boundPorts();
  t.same(ports.filter((p) => now.includes(p)), [port], 'on the same port, the others closed');
});

t.test('a grown socket sends what was queued before, from the same port, and runs where they lie', async (t) => {
  const { socks } = withNative(t);
  const rx = dgram.createSocket('udp4');
  t.teardown(() => rx.close());
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  const got: { text: string; port: number }[] = [];
  rx.on('message', (m, rinfo) => got.push({ text: m.toString(), port: rinfo.port }));
  const [id] = await socks.open('p1', 1);
  const to: Endpoint = { address: '127.0.0.1', port: rx.address().port, sock: id };
  // Queued in the turn that keeps it, flushed only after it has grown.
  for (let i = 0; i < 20; i++) socks.send(new TextEncoder().encode(`d${i}`), to);
  socks.keep('p1', [id]);
  await turn();
  t.equal(socks.batched, 1, 'grown');
  const buf = new TextEncoder().encode('run0run1');
  const run: DatagramRun = { to, peerId: 'p1', buf, offsets: new Int32Array([0, 4]), lengths: new Int32Array([4, 4]), start: 0, count: 2 };
  t.equal(socks.queueRun(run, to), true);
  socks.flush();
  for (let i = 0; i < 100 && got.length < 22; i++) await sleep(10);
  t.same(got.map((g) => g.text).sort(), [...Array.from({ length: 20 }, (_, i) => `d${i}`), 'run0', 'run1'].sort(), 'every datagram left');
  t.same([...new Set(got.map((g) => g.port))], [socks.port(id)], 'all from the kept port');
  t.equal(socks.sendFailed, 0);
});

t.test('a small socket still takes the largest datagram', async (t) => {
  const { socks, got } = withNative(t);
  const [id] = await socks.open('p1', 1);
  const c = dgram.createSocket('udp4');
  t.teardown(() => c.close());
  await new Promise<void>((r) => c.send(Buffer.alloc(65_507, 1), socks.port(id)!, '127.0.0.1', () => r()));
  for (let i = 0; i < 100 && !got.has(id); i++) await sleep(10);
  t.equal(got.get(id), 1);
  const buf = new Uint8Array(65_507);
  const rx = dgram.createSocket('udp4');
  t.teardown(() => rx.close());
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  const sizes: number[] = [];
  rx.on('message', (m) => sizes.push(m.length));
  socks.send(buf, { address: '127.0.0.1', port: rx.address().port, sock: id });
  socks.flush();
  for (let i = 0; i < 100 && sizes.length === 0; i++) await sleep(10);
  t.same(sizes, [65_507], 'and sends it');
});
