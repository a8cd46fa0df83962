// An in-process meshd-relay and RelayClients on loopback: login, forwarding, peer-gone,
// replacement, and the shutdown notice.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { RelayServer, DEFAULT_LIMITS } from '../relay/server.js';
import { RelayClient } from '../src/transport/relay-client.js';
import { generatePrivateKey, publicKeyOf } from '../src/crypto/keys.js';
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
