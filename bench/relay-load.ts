// Load for the relay forwarding benchmark: PAIRS pairs of logged-in clients in one process, each
// sender pushing PACKETS_PER_MESSAGE × PACKET_BYTES per WebSocket message to its receiver as fast as
// its socket takes them (at most MAX_BUFFERED bytes waiting), for SECONDS.
//   node relay-load.js WS_URL PAIRS SECONDS PACKETS_PER_MESSAGE PACKET_BYTES
// Prints "ready" once every client is logged in (then waits for SIGUSR1 to start), and a JSON line
// with what the receivers got when the time is up.
import WebSocket from 'ws';
import { generatePrivateKey, publicKeyOf } from '../src/crypto/keys.js';
import { pooledRandom } from '../src/crypto/random.js';
import { sealLoginProof } from '../src/crypto/relay-login.js';
import { BatchWriter, FEATURE_BATCH, FRAME_SEND_BATCH, decodeRelayFrame, encodeClientLogin, encodeSendPacket } from '../src/wire/relay.js';

const [url, pairsArg, secondsArg, perMessageArg, bytesArg] = process.argv.slice(2);
const PAIRS = Number(pairsArg);
const SECONDS = Number(secondsArg);
const PER_MESSAGE = Number(perMessageArg);
const PACKET_BYTES = Number(bytesArg);
const MAX_BUFFERED = 512 * 1024;
const rng = pooledRandom();

interface Conn {
  ws: WebSocket;
  pub: Uint8Array;
  packets: number;
  bytes: number;
}

function login(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const priv = generatePrivateKey(rng);
    const pub = publicKeyOf(priv);
    const ws = new WebSocket(url, { perMessageDeflate: false, generateMask: (m) => void m.fill(0) });
    const c: Conn = { ws, pub, packets: 0, bytes: 0 };
    ws.on('error', reject);
    ws.on('message', (d: Buffer) => {
      const f = decodeRelayFrame(d);
      if (f.type === 'server-hello') {
        const nonce = rng(24);
        ws.send(encodeClientLogin(pub, nonce, sealLoginProof(priv, pub, f.serverKey, f.challenge, nonce)!, FEATURE_BATCH));
      } else if (f.type === 'server-welcome') resolve(c);
      else if (f.type === 'recv-batch') {
        c.packets += f.count;
        c.bytes += f.body.length - 2 * f.count;
      } else if (f.type === 'recv-packet') {
        c.packets++;
        c.bytes += f.packet.length;
      }
    });
  });
}

/** The one message a sender repeats (frames from this client are unmasked, so the bytes stay as they are). */
function message(dst: Uint8Array): Buffer {
  const packet = rng(PACKET_BYTES);
  if (PER_MESSAGE === 1) return encodeSendPacket(dst, packet);
  const w = new BatchWriter(FRAME_SEND_BATCH, 1 + 32 + PER_MESSAGE * (2 + PACKET_BYTES));
  for (let i = 0; i < PER_MESSAGE; i++) w.add(dst, packet);
  return w.take();
}

async function main(): Promise<void> {
  const pairs: { from: Conn; to: Conn; msg: Buffer }[] = [];
  for (let i = 0; i < PAIRS; i++) {
    const [from, to] = await Promise.all([login(), login()]);
    pairs.push({ from, to, msg: message(to.pub) });
  }
  process.stdout.write('ready\n');
  await new Promise<void>((r) => process.once('SIGUSR1', () => r()));
  let running = true;
  const pump = () => {
    if (!running) return;
    for (const p of pairs) {
      for (let n = 0; n < 8 && p.from.ws.bufferedAmount < MAX_BUFFERED; n++) p.from.ws.send(p.msg);
    }
    setImmediate(pump);
  };
  const started = performance.now();
  pump();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  running = false;
  const seconds = (performance.now() - started) / 1000;
  const packets = pairs.reduce((n, p) => n + p.to.packets, 0);
  const bytes = pairs.reduce((n, p) => n + p.to.bytes, 0);
  process.stdout.write(JSON.stringify({ seconds, packets, bytes }) + '\n');
  for (const p of pairs) {
    p.from.ws.terminate();
    p.to.ws.terminate();
  }
  process.exit(0);
}

void main();
