// Misbehaves against a meshd-relay, bounded in count and time (run inside a test namespace):
//   node relay-abuser.js WS_URL ALLOWED_PRIVATE_KEY VICTIM_PUBLIC_KEY
// Prints one JSON object: how the relay answered each attempt.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { generatePrivateKey, keyToBase64, parsePrivateKey, parsePublicKey, publicKeyOf } from '../../src/crypto/keys.js';
import { sealLoginProof } from '../../src/crypto/relay-login.js';
import { decodeRelayFrame, encodeClientLogin, encodeSendPacket } from '../../src/wire/relay.js';

const [url, allowedPrivB64, victimB64] = process.argv.slice(2);
const allowedPriv = parsePrivateKey(allowedPrivB64);
const victim = parsePublicKey(victimB64);
const rnd = (n: number) => new Uint8Array(randomBytes(n));

interface Conn {
  ws: WebSocket;
  closed: Promise<{ code: number; reason: string; afterMs: number }>;
  hello: Promise<{ serverKey: Uint8Array; challenge: Uint8Array }>;
  welcome: Promise<boolean>;
}

function open(): Conn {
  const started = Date.now();
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('error', () => {});
  const closed = new Promise<{ code: number; reason: string; afterMs: number }>((r) =>
    ws.on('close', (code, reason) => r({ code, reason: reason.toString(), afterMs: Date.now() - started })),
  );
  let gotHello!: (h: { serverKey: Uint8Array; challenge: Uint8Array }) => void;
  let gotWelcome!: (ok: boolean) => void;
  const hello = new Promise<{ serverKey: Uint8Array; challenge: Uint8Array }>((r) => (gotHello = r));
  const welcome = new Promise<boolean>((r) => (gotWelcome = r));
  void closed.then(() => gotWelcome(false));
  ws.on('message', (d: Buffer) => {
    const f = decodeRelayFrame(d);
    if (f.type === 'server-hello') gotHello({ serverKey: f.serverKey, challenge: f.challenge });
    if (f.type === 'server-welcome') gotWelcome(true);
  });
  return { ws, closed, hello, welcome };
}

async function login(priv: Uint8Array, c: Conn, corrupt = false): Promise<void> {
  const h = await c.hello;
  const pub = publicKeyOf(priv as never);
  const nonce = rnd(24);
  const sealed = corrupt ? rnd(48) : sealLoginProof(priv, pub, h.serverKey, h.challenge, nonce)!;
  c.ws.send(encodeClientLogin(pub, nonce, sealed));
}

async function main(): Promise<void> {
  const out: Record<string, unknown> = {};

  const bad = open();
  await login(allowedPriv, bad, true);
  out.badProof = await bad.closed;

  const stranger = open();
  await login(generatePrivateKey(rnd), stranger);
  out.notAllowed = await stranger.closed;

  const idle = open();
  out.neverLogsIn = await idle.closed;

  const early = open();
  await early.hello;
  early.ws.send(encodeSendPacket(victim, rnd(100)));
  out.frameBeforeLogin = await early.closed;

  const big = open();
  await login(allowedPriv, big);
  out.oversizedLoggedIn = await big.welcome;
  big.ws.send(rnd(100_000));
  out.oversized = await big.closed;

  // Two connections with one key: the newer replaces the older.
  const first = open();
  await login(allowedPriv, first);
  await first.welcome;
  const second = open();
  await login(allowedPriv, second);
  out.secondLoggedIn = await second.welcome;
  out.replaced = await first.closed;

  // Flood the victim from the logged-in connection.
  let flooded = 0;
  const floodUntil = Date.now() + 3000;
  while (Date.now() < floodUntil && flooded < 30_000) {
    if (second.ws.bufferedAmount > 4 * 1024 * 1024) {
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    second.ws.send(encodeSendPacket(victim, rnd(1200)));
    flooded++;
  }
  out.flooded = flooded;
  second.ws.close();

  // Garbage connections: raw TCP junk, and WebSockets that send junk frames.
  const u = new URL(url);
  const raw = await Promise.all(
    Array.from({ length: 200 }, () =>
      new Promise<string>((resolve) => {
        const s = net.connect(Number(u.port), u.hostname, () => s.write(randomBytes(500)));
        s.setTimeout(10_000, () => s.destroy());
        s.on('error', () => resolve('error'));
        s.on('close', () => resolve('closed'));
        s.on('data', () => {});
      }),
    ),
  );
  out.rawGarbageClosed = raw.length;
  const junk = await Promise.all(
    Array.from({ length: 100 }, async () => {
      const c = open();
      await c.hello;
      c.ws.send(Buffer.concat([Buffer.from([Math.floor(Math.random() * 256)]), randomBytes(64)]));
      return (await c.closed).code;
    }),
  );
  out.junkCloseCodes = [...new Set(junk)].sort();
  out.key = keyToBase64(publicKeyOf(allowedPriv));
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

void main();
