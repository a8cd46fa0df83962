// Opens N idle, logged-in relay clients from one process (for the relay capacity benchmark):
//   node relay-clients.js WS_URL N  -> prints "logged-in N" when all are in, then holds them until killed.
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { generatePrivateKey, publicKeyOf } from '../src/crypto/keys.js';
import { sealLoginProof } from '../src/crypto/relay-login.js';
import { decodeRelayFrame, encodeClientLogin } from '../src/wire/relay.js';

const [url, nArg] = process.argv.slice(2);
const N = Number(nArg);
const rng = (n: number) => new Uint8Array(randomBytes(n));
const sockets: WebSocket[] = [];
let loggedIn = 0;
let failed = 0;

function one(): Promise<void> {
  return new Promise((resolve) => {
    const priv = generatePrivateKey(rng);
    const pub = publicKeyOf(priv);
    const ws = new WebSocket(url, { perMessageDeflate: false });
    sockets.push(ws);
    ws.on('error', () => {});
    ws.on('close', () => {
      failed++;
      resolve();
    });
    ws.on('message', (d: Buffer) => {
      const f = decodeRelayFrame(d);
      if (f.type === 'server-hello') {
        const nonce = rng(24);
        ws.send(encodeClientLogin(pub, nonce, sealLoginProof(priv, pub, f.serverKey, f.challenge, nonce)!));
      } else if (f.type === 'server-welcome') {
        loggedIn++;
        resolve();
      }
    });
  });
}

async function main(): Promise<void> {
  const CONCURRENCY = 200;
  for (let i = 0; i < N; i += CONCURRENCY) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, N - i) }, one));
  }
  process.stdout.write(`logged-in ${loggedIn} failed ${failed}\n`);
  setInterval(() => {}, 60_000);
}

void main();
