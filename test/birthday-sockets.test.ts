// The hard side's birthday sockets (src/transport/birthday-sockets.ts): probing on node:dgram
// sockets, and the one that met moved, on the same port, to a batched socket that carries the
// peer's traffic from then on; back on node:dgram when that cannot bind. Real loopback sockets.
import t, { type Test } from 'tap';
import dgram from 'node:dgram';
import { BirthdaySockets, MAX_BATCHED_BIRTHDAY_SOCKETS, type BatchedSocket } from '../src/transport/birthday-sockets.js';
import type { Endpoint } from '../src/tunnel/endpoint.js';
import type { DatagramRun } from '../src/tunnel/outbox.js';

class FakeBatched implements BatchedSocket {
  queued: { data: number[]; to: Endpoint }[] = [];
  runs: { count: number; to: Endpoint }[] = [];
  flushes = 0;
  closed = false;
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
  close(): void {
    this.closed = true;
  }
}

/** A port of this host's that a dgram socket of `socks` is bound to (probed from outside). */
async function boundPorts(): Promise<Set<number>> {
  const { execFileSync } = await import('node:child_process');
  const out = execFileSync('ss', ['-Hunap'], { encoding: 'utf8' });
  const mine = out.split('\n').filter((l) => l.includes(`pid=${process.pid},`));
  return new Set(mine.map((l) => Number(/:(\d+)\s/.exec(l)?.[1] ?? NaN)));
}

const turn = () => new Promise((r) => setImmediate(r));

/** BirthdaySockets whose batched sockets are fakes (kept in `made`), closed with the test. */
function withFakeBatched(t: Test): { made: FakeBatched[]; socks: BirthdaySockets } {
  const made: FakeBatched[] = [];
  const socks = new BirthdaySockets(() => undefined, (port, id) => {
    const b = new FakeBatched(port, id);
    made.push(b);
    return b;
  });
  t.teardown(() => socks.closeAll());
  return { made, socks };
}

t.test('the one socket left for a peer moves to a batched socket on its port', async (t) => {
  const { made, socks } = withFakeBatched(t);
  const ids = await socks.open('p1', 3);
  t.equal(ids.length, 3);
  const portsBefore = await boundPorts();
  socks.keep('p1', [ids[0], ids[1]]);
  t.equal(made.length, 0, 'two left (both met): not yet');
  t.equal(socks.size, 2);
  socks.keep('p1', [ids[1]]);
  t.equal(made.length, 0, 'one left: not in the same turn (what it was given to send must leave first)');
  await turn();
  t.equal(made.length, 1, 'batched a turn later');
  t.equal(made[0].id, ids[1], 'with its id, for the endpoints it reports');
  t.ok(portsBefore.has(made[0].port), `on the port the dgram socket had (${made[0].port})`);
  t.notOk((await boundPorts()).has(made[0].port), 'which the dgram socket has given up');
  t.equal(socks.batched, 1);
  t.equal(socks.batchedOpened, 1);

  const to: Endpoint = { address: '127.0.0.1', port: 9, sock: ids[1] };
  socks.send(new Uint8Array([1, 2, 3]), to);
  const run: DatagramRun = { to, peerId: 'p1', buf: new Uint8Array(64), offsets: new Int32Array([0, 32]), lengths: new Int32Array([32, 32]), start: 0, count: 2 };
  t.equal(socks.queueRun(run, to), true, 'a run is queued where it lies');
  t.same(made[0].queued, [{ data: [1, 2, 3], to }]);
  t.same(made[0].runs, [{ count: 2, to }]);
  t.equal(made[0].flushes, 0, 'nothing sent before the flush');
  socks.flush();
  socks.flush();
  t.equal(made[0].flushes, 1, 'one flush for what was queued');
  t.equal(socks.queueRun(run, { address: '127.0.0.1', port: 9, sock: 999 }), false, 'no such socket: the caller sends one by one');
  made[0].stats.sendErrors = 2;
  t.equal(socks.sendFailed, 2, "the batched socket's failures count");
  socks.close('p1');
  t.equal(made[0].closed, true, 'closed with the peer');
  t.equal(socks.size, 0);
  t.equal(socks.sendFailed, 2, 'and are kept after it closed');
});

t.test('without a batched socket (or when it cannot bind) the dgram socket carries on, same port', async (t) => {
  const socks = new BirthdaySockets(() => undefined, () => null);
  t.teardown(() => socks.closeAll());
  const [id] = await socks.open('p1', 1);
  const port = [...(await boundPorts())];
  socks.keep('p1', [id]);
  await turn();
  t.equal(socks.batched, 0);
  // Rebound asynchronously on the same port: wait for it.
  for (let i = 0; i < 50 && socks.size === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(socks.size, 1, 'still one socket for the peer');
  t.same([...(await boundPorts())].sort(), port.sort(), 'on the same port');
  const to: Endpoint = { address: '127.0.0.1', port: 0, sock: id };
  const run: DatagramRun = { to, peerId: 'p1', buf: new Uint8Array(8), offsets: new Int32Array([0]), lengths: new Int32Array([8]), start: 0, count: 1 };
  t.equal(socks.queueRun(run, to), false, 'runs go datagram by datagram');

  // And it still receives, as the same socket id.
  const got: Endpoint[] = [];
  const recv = new BirthdaySockets((_m, from) => got.push(from), null);
  t.teardown(() => recv.closeAll());
  const [rid] = await recv.open('p2', 1);
  recv.keep('p2', [rid]);
  await turn();
  const [rport] = [...(await boundPorts())].filter((p) => !port.includes(p));
  const c = dgram.createSocket('udp4');
  await new Promise<void>((r) => c.send(Buffer.from('hi'), rport, '127.0.0.1', () => r()));
  c.close();
  for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(got[0]?.sock, rid, 'a datagram to the kept port arrives tagged with its socket');
});

t.test(`no more than ${MAX_BATCHED_BIRTHDAY_SOCKETS} batched sockets at once`, async (t) => {
  let made = 0;
  const socks = new BirthdaySockets(() => undefined, (port, id) => {
    made++;
    return new FakeBatched(port, id);
  });
  t.teardown(() => socks.closeAll());
  for (let p = 0; p < MAX_BATCHED_BIRTHDAY_SOCKETS + 2; p++) {
    const [id] = await socks.open(`p${p}`, 1);
    socks.keep(`p${p}`, [id]);
    await turn();
  }
  t.equal(made, MAX_BATCHED_BIRTHDAY_SOCKETS);
  t.equal(socks.batched, MAX_BATCHED_BIRTHDAY_SOCKETS);
  t.equal(socks.size, MAX_BATCHED_BIRTHDAY_SOCKETS + 2, 'the others stay on node:dgram');
});

t.test('what the dgram socket was given to send before the move still leaves', async (t) => {
  const rx = dgram.createSocket('udp4');
  t.teardown(() => rx.close());
  await new Promise<void>((r) => rx.bind(0, '127.0.0.1', () => r()));
  const got: string[] = [];
  rx.on('message', (m) => got.push(m.toString()));
  const { made, socks } = withFakeBatched(t);
  const [id] = await socks.open('p1', 1);
  const to: Endpoint = { address: '127.0.0.1', port: rx.address().port, sock: id };
  // In one flush: data for the peer, then the event that leaves it one socket.
  for (let i = 0; i < 20; i++) socks.send(new TextEncoder().encode(`d${i}`), to);
  socks.keep('p1', [id]);
  socks.send(new TextEncoder().encode('after'), to);
  for (let i = 0; i < 100 && (made.length === 0 || got.length < 21); i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(made.length, 1, 'batched once they have left');
  t.same(got.sort(), [...Array.from({ length: 20 }, (_, i) => `d${i}`), 'after'].sort(), 'every datagram arrived, none lost to the move');
  t.equal(socks.sendFailed, 0);
});
