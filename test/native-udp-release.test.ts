// A closed NativeUdpConn (and a grown one's old reader) is let go: its reader's callback, held
// from native code, must not keep it alive. Before, every closed socket stayed in memory with its
// buffers (~6 MiB for a data socket; a birthday probing attempt closes hundreds).
import t from 'tap';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { NativeUdpConn, SMALL_SIZES } from '../src/transport/native-udp.js';
import { loadNative } from '../src/tun/native.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collects until `ref` is gone (finalizers may need a few rounds and turns), at most `rounds` times. */
async function collected(ref: WeakRef<object>, rounds = 20): Promise<boolean> {
  for (let i = 0; i < rounds && ref.deref() !== undefined; i++) {
    await new Promise((r) => setTimeout(r, 5));
    gc();
  }
  return ref.deref() === undefined;
}

const handlers = () => ({ onMessage: () => undefined, onBatchEnd: () => undefined });

t.test('a closed socket is collected, whatever its sizes', async (t) => {
  for (const [name, open] of [
    ['full', () => NativeUdpConn.bind(0, handlers())],
    ['small', () => NativeUdpConn.bind(0, handlers(), 0, 7, SMALL_SIZES)],
    [
      'grown',
      () => {
        const c = NativeUdpConn.bind(0, handlers(), 0, 7, SMALL_SIZES);
        c.grow();
        return c;
      },
    ],
  ] as const) {
    const ref = ((): WeakRef<object> => {
      const c = open();
      c.close();
      return new WeakRef(c);
    })();
    t.ok(await collected(ref), `${name}: collected after close`);
  }
});

t.test('a reader stopped from JavaScript lets its callback go', async (t) => {
  const addon = loadNative();
  const r = addon.udpOpen(0, 1 << 20, 0);
  t.teardown(() => addon.closeFd(r.fd));
  const ref = ((): WeakRef<object> => {
    // The callback's closure holds the reader, as NativeUdpConn's does through the conn.
    const holder: { reader: unknown } = { reader: null };
    const reader = new addon.UdpReader(r.fd, Buffer.alloc(2048), 2048, new Int32Array(1), new Int32Array(1), Buffer.alloc(34), () => void holder.reader);
    holder.reader = reader;
    t.equal(reader.start(), 0);
    reader.stop();
    return new WeakRef(holder);
  })();
  t.ok(await collected(ref), 'collected');
});

t.test('an open socket that only its reader holds keeps receiving (polling keeps it alive)', async (t) => {
  const dgram = await import('node:dgram');
  let got = 0;
  const port = ((): number => {
    let self: NativeUdpConn | null = null;
    self = NativeUdpConn.bind(0, { onMessage: () => void (got++, self?.close()), onBatchEnd: () => undefined }, 0, 7, SMALL_SIZES);
    return self.port;
  })();
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 5));
    gc();
  }
  const c = dgram.createSocket('udp4');
  t.teardown(() => c.close());
  await new Promise<void>((r) => c.send(Buffer.from('x'), port, '127.0.0.1', () => r()));
  for (let i = 0; i < 100 && got === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(got, 1, 'the datagram arrived (and the socket closed itself)');
});
