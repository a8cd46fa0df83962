// Handshakes per second one meshd process completes: two sans-IO devices in this process, a fresh
// Noise_IKpsk2 handshake each round (initiation → response → first data), timed on the responder
// side alone and for both sides together. The injected clock moves 25 ms a round so the per-peer
// initiation rate limit (50/s) does not cap the count. Writes bench/results/handshakes-*.json.
//   BENCH_HANDSHAKES (default 3000)
import { nativePrims } from '../src/crypto/native-prims.js';
import { generatePrivateKey } from '../src/crypto/keys.js';
import { pooledRandom } from '../src/crypto/random.js';
import { nodeCryptoAead } from '../src/crypto/transport-aead.js';
import { Device, type Clock } from '../src/tunnel/device.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { machine, writeResult } from './common.js';

const N = Number(process.env.BENCH_HANDSHAKES ?? 3000);
// The daemon's randomness (crypto/random.ts), so the figure is what a running meshd does.
const rng = pooledRandom();

let mono = 1_000_000;
let wall = Date.now();
const clock: Clock = { now: () => mono, wall: () => wall };
const opts = { clock, rng, aead: nodeCryptoAead, mtu: 1420, underLoadHandshakesPerSecond: Number.MAX_SAFE_INTEGER };
const a = new Device({ ...opts, privateKey: generatePrivateKey(rng) });
const r = new Device({ ...opts, privateKey: generatePrivateKey(rng) });
const peerOfA = a.addPeer({ publicKey: r.publicKey, endpoint: { address: '192.0.2.2', port: 51820 } }, [parseCidr('10.0.0.2/32')!]);
r.addPeer({ publicKey: a.publicKey, endpoint: null }, [parseCidr('10.0.0.1/32')!]);
const from = { address: '192.0.2.1', port: 51820 };
const packet = new Uint8Array(28);
packet[0] = 0x45;
packet[3] = 28;
packet.set([10, 0, 0, 1, 10, 0, 0, 2], 12);

let responderNs = 0n;
let completed = 0;
const started = process.hrtime.bigint();
for (let i = 0; i < N; i++) {
  mono += 25;
  wall += 25;
  a.clearSessions(peerOfA);
  peerOfA.timers.lastSentHandshakeMs = -Infinity;
  a.inside(packet);
  const init = a.out.net.splice(0);
  a.out.clear();
  const t0 = process.hrtime.bigint();
  for (const d of init) r.outside(d.data, from);
  responderNs += process.hrtime.bigint() - t0;
  const resp = r.out.net.splice(0);
  r.out.clear();
  for (const d of resp) a.outside(d.data, { address: '192.0.2.2', port: 51820 });
  const data = a.out.net.splice(0);
  a.out.clear();
  const t1 = process.hrtime.bigint();
  for (const d of data) r.outside(d.data, from); // the first data message confirms the responder's session
  responderNs += process.hrtime.bigint() - t1;
  if (r.out.tun.length === 1) completed++;
  r.out.clear();
}
const totalS = Number(process.hrtime.bigint() - started) / 1e9;
const result = {
  date: new Date().toISOString(),
  machine: machine(),
  settings: { handshakes: N, primitives: nativePrims ? 'addon: own BLAKE2s/HMAC/KDF, OpenSSL X25519 core' : 'node:crypto (X25519 KeyObjects, BLAKE2s, HMAC) and noble (keyed BLAKE2s)' },
  completed,
  bothSidesPerSecond: completed / totalS,
  responderPerSecond: completed / (Number(responderNs) / 1e9),
};
process.stdout.write(`${completed}/${N} handshakes completed (primitives: ${result.settings.primitives})\n`);
process.stdout.write(`both sides in one process: ${result.bothSidesPerSecond.toFixed(0)} handshakes/s\n`);
process.stdout.write(`responder work alone:      ${result.responderPerSecond.toFixed(0)} handshakes/s per core\n`);
process.stdout.write(`wrote ${writeResult('handshakes', result)}\n`);
