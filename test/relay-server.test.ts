// An in-process meshd-relay and RelayClients on loopback: login, forwarding, peer-gone,
// replacement, and the shutdown notice.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { RelayServer, DEFAULT_LIMITS } from '../relay/server.js';
import { RelayClient } from '../src/transport/relay-client.js';
import { generatePrivateKey, publicKeyOf } from '../src/crypto/keys.js';
import WebSocket from 'ws';
import { decodeRelayFrame, encodeClientLogin } from '../src/wire/relay.js';
import { sealLoginProof } from '../src/crypto/relay-login.js';
import { waitFor } from './helpers/lab.js';

const rng = (n: number) => new Uint8Array(randomBytes(n));
const log = pino({ level: 'silent' });

function identity() {
  const privateKey = generatePrivateKey(rng);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

t.test('clients log in, exchange packets, learn of absent peers, and hear the shutdown', async (t) => {
  const server = new RelayServer({ privateKey: generatePrivateKey(rng), listen: [{ host: '127.0.0.1', port: 0 }], limits: { ...DEFAULT_LIMITS }, allowKeys: () => null, log });
  const [port] = await server.start();
  const url = `ws://127.0.0.1:${port}/`;
  const a = identity();
  const b = identity();
  const got: { from: string; data: string }[] = [];
  const gone: string[] = [];
  const disconnects: string[] = [];
  const mk = (id: ReturnType<typeof identity>, name: string) =>
    new RelayClient(url, () => id, undefined, {
      onPacket: (src, packet) => got.push({ from: Buffer.from(src).toString('hex'), data: `${name}:${Buffer.from(packet).toString()}` }),
      onPeerGone: (key) => gone.push(Buffer.from(key).toString('hex')),
      onStateChange: (c) => {
        if (c.state === 'backoff') disconnects.push(`${name}: ${c.lastError}`);
      },
    }, log);
  const ca = mk(a, 'a');
  const cb = mk(b, 'b');
  t.teardown(() => {
    ca.stop();
    cb.stop();
  });
  ca.start();
  cb.start();
  t.ok(await waitFor(() => ca.connected && cb.connected, 5000), 'both logged in');
  t.equal(server.clientCount, 2);
  t.ok(ca.send(b.publicKey, Buffer.from('hello b')));
  t.ok(await waitFor(() => got.length === 1, 2000));
  t.same(got[0], { from: Buffer.from(a.publicKey).toString('hex'), data: 'b:hello b' }, 'B got it, from A\'s key');
  const nobody = identity();
  ca.send(nobody.publicKey, Buffer.from('anyone?'));
  t.ok(await waitFor(() => gone.length === 1, 2000), 'peer-gone for an absent key');
  t.equal(gone[0], Buffer.from(nobody.publicKey).toString('hex'));

  // A second connection with B's key replaces the first.
  const cb2 = mk(b, 'b2');
  t.teardown(() => cb2.stop());
  cb2.start();
  t.ok(await waitFor(() => cb2.connected, 5000));
  t.ok(await waitFor(() => !cb.connected, 5000), 'the first connection was replaced');
  cb.stop();
  t.match(cb.lastError ?? '', /4006/);
  ca.send(b.publicKey, Buffer.from('again'));
  t.ok(await waitFor(() => got.some((g) => g.data === 'b2:again'), 2000), 'packets go to the newer connection');

  await server.stop();
  t.ok(await waitFor(() => !ca.connected, 3000), 'clients see the relay go');
  t.ok(disconnects.includes('a: 1001 relay shutting down'), `with the shutdown reason: ${disconnects.join('; ')}`);
  ca.stop();
  cb2.stop();
});

/** A client of the first protocol revision: logs in without features, collects raw frames. */
async function oldClient(url: string, id: ReturnType<typeof identity>): Promise<{ ws: WebSocket; frames: ReturnType<typeof decodeRelayFrame>[] }> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const frames: ReturnType<typeof decodeRelayFrame>[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('error', reject);
    ws.on('message', (d: Buffer) => {
      const f = decodeRelayFrame(d);
      if (f.type === 'server-hello') {
        const nonce = rng(24);
        const login = encodeClientLogin(id.publicKey, nonce, sealLoginProof(id.privateKey, id.publicKey, f.serverKey, f.challenge, nonce)!);
        ws.send(login.subarray(0, 1 + 32 + 24 + 48)); // no features field
      } else if (f.type === 'server-welcome') resolve();
      else frames.push(f);
    });
  });
  return { ws, frames };
}

t.test('peer-present when a key we sent to arrives, peer-gone when it leaves; batches, split for old clients', async (t) => {
  const server = new RelayServer({ privateKey: generatePrivateKey(rng), listen: [{ host: '127.0.0.1', port: 0 }], limits: { ...DEFAULT_LIMITS }, allowKeys: () => null, log });
  const [port] = await server.start();
  t.teardown(() => server.stop());
  const url = `ws://127.0.0.1:${port}/`;
  const a = identity();
  const b = identity();
  const hex = (k: Uint8Array) => Buffer.from(k).toString('hex');
  const events: string[] = [];
  const batches: string[][] = [];
  let current: string[] = [];
  const ca = new RelayClient(url, () => a, undefined, {
    onPacket: () => {},
    onPeerGone: (key, disconnected) => events.push(`gone ${hex(key) === hex(b.publicKey) ? 'b' : '?'}${disconnected ? ' disconnected' : ''}`),
    onPeerPresent: (key) => events.push(`present ${hex(key) === hex(b.publicKey) ? 'b' : '?'}`),
  }, log);
  t.teardown(() => ca.stop());
  ca.start();
  t.ok(await waitFor(() => ca.connected, 5000));
  ca.send(b.publicKey, Buffer.from('are you there?'));
  t.ok(await waitFor(() => events.length === 1, 2000));
  t.same(events, ['gone b'], 'B is not there yet');

  const cb = new RelayClient(url, () => b, undefined, {
    onPacket: (src, p) => current.push(`${hex(src) === hex(a.publicKey) ? 'a' : '?'}:${Buffer.from(p).toString()}`),
    onBatchEnd: () => {
      batches.push(current);
      current = [];
    },
  }, log);
  t.teardown(() => cb.stop());
  cb.start();
  t.ok(await waitFor(() => events.length === 2, 5000), 'A hears of B at once');
  t.same(events[1], 'present b');

  for (const m of ['one', 'two', 'three']) t.ok(ca.queue(b.publicKey, Buffer.from(m)));
  ca.flush();
  t.ok(await waitFor(() => batches.length === 1, 2000));
  t.same(batches[0], ['a:one', 'a:two', 'a:three'], 'three packets, one relay message, in order');

  // A client that announced no features gets the same batch as single packets.
  const c = identity();
  const old = await oldClient(url, c);
  t.teardown(() => old.ws.close());
  for (const m of ['x', 'y']) ca.queue(c.publicKey, Buffer.from(m));
  ca.flush();
  t.ok(await waitFor(() => old.frames.length === 2, 2000));
  t.same(old.frames.map((f) => f.type), ['recv-packet', 'recv-packet']);
  t.same(old.frames.map((f) => (f.type === 'recv-packet' ? Buffer.from(f.packet).toString() : '')), ['x', 'y']);

  cb.stop();
  t.ok(await waitFor(() => events.length === 3, 2000), 'A hears that B left, without sending anything');
  t.same(events[2], 'gone b disconnected');
  const metrics = await server.metrics.registry.metrics();
  t.match(metrics, /meshd_relay_frames_forwarded_total 5/, 'five packets forwarded');
  t.match(metrics, /meshd_relay_messages_forwarded_total 2/, 'in two messages');
  t.match(metrics, /meshd_relay_peer_notices_total\{kind="present"\} 1/);
});
