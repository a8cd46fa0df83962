// Load for the roster fan-out benchmark, run inside the relay's namespace:
//   node mesh-fanout.js WS_URL KEYS_JSON NEXT_ROSTER DELTAS(0|1)
// KEYS_JSON: {"meshKey", "serial" (held by everyone), "admin" (base64 private key), "members": [base64 private keys]}.
// Logs every member in and subscribes it with `serial`, then (all subscribed) publishes NEXT_ROSTER
// as the admin and prints one JSON line: ms from the publish to the first and to the last member
// holding the complete roster (or delta), and how many got it.
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { parsePrivateKey, publicKeyOf } from '../src/crypto/keys.js';
import { parseMeshPublicKey } from '../src/crypto/ed25519.js';
import { pooledRandom } from '../src/crypto/random.js';
import { sealLoginProof } from '../src/crypto/relay-login.js';
import { FEATURE_ROSTER_DELTA, FRAME_PUBLISH, decodeRelayFrame, encodeClientLogin, encodeSubscribe } from '../src/wire/relay.js';
import { RosterAssembler, rosterParts } from '../src/wire/roster-parts.js';

const [url, keysFile, nextFile, deltasArg] = process.argv.slice(2);
const keys = JSON.parse(readFileSync(keysFile, 'utf8')) as { meshKey: string; serial: number; admin: string; members: string[] };
const meshKey = parseMeshPublicKey(keys.meshKey)!;
const next = new Uint8Array(readFileSync(nextFile));
const deltas = deltasArg === '1';
const rng = pooledRandom();
let publishedAt = 0;
const got: number[] = [];

function client(privB64: string, onHeld: () => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const priv = parsePrivateKey(privB64);
    const pub = publicKeyOf(priv);
    const ws = new WebSocket(url, { perMessageDeflate: false, generateMask: (m) => void m.fill(0), maxPayload: 16 << 20 });
    const asm = new RosterAssembler(16 << 20);
    let subscribed = false;
    ws.on('error', reject);
    ws.on('close', (code) => reject(new Error(`closed ${code}`)));
    ws.on('message', (d: Buffer) => {
      const f = decodeRelayFrame(d);
      if (f.type === 'server-hello') {
        const nonce = rng(24);
        ws.send(encodeClientLogin(pub, nonce, sealLoginProof(priv, pub, f.serverKey, f.challenge, nonce)!, deltas ? FEATURE_ROSTER_DELTA : 0));
      } else if (f.type === 'server-welcome') {
        ws.send(encodeSubscribe(meshKey, keys.serial));
      } else if (f.type === 'roster-held' && !subscribed) {
        subscribed = true;
        onHeld();
        resolve(ws);
      } else if ((f.type === 'roster' || f.type === 'roster-delta') && publishedAt) {
        if (asm.add(f.meshKey, f.total, f.offset, f.bytes).kind === 'done') got.push(performance.now() - publishedAt);
      }
    });
  });
}

async function main(): Promise<void> {
  let ready = 0;
  const admin = await client(keys.admin, () => ready++);
  const all: WebSocket[] = [admin];
  for (let i = 0; i < keys.members.length; i += 200) {
    all.push(...(await Promise.all(keys.members.slice(i, i + 200).map((k) => client(k, () => ready++)))));
  }
  process.stderr.write(`${ready} subscribed\n`);
  await new Promise((r) => setTimeout(r, 1000));
  publishedAt = performance.now();
  for (const part of rosterParts(FRAME_PUBLISH, meshKey, next, 256 * 1024)) admin.send(part);
  const deadline = Date.now() + 120_000;
  while (got.length < keys.members.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  got.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ subscribers: keys.members.length, received: got.length, firstMs: got[0] ?? null, medianMs: got[Math.floor(got.length / 2)] ?? null, lastMs: got[got.length - 1] ?? null }) + '\n');
  for (const ws of all) ws.terminate();
  process.exit(0);
}

void main();
