// Sends mac1-valid handshake initiations from keys that are not peers at a meshd host, as fast as
// it can (or PER_SECOND a second) for a bounded time (run inside a benchmark or test namespace):
//   node flooder.js TARGET_PUBLIC_KEY HOST PORT SECONDS [PER_SECOND]
// Prints "sent N" when done. Cookie replies it receives are ignored (it does not retry with mac2).
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { generatePrivateKey, parsePublicKey, publicKeyOf } from '../src/crypto/keys.js';
import { Handshake, createInitiation } from '../src/noise/handshake.js';
import { CookieGenerator } from '../src/noise/cookie.js';

const [targetKey, host, portArg, secondsArg, rateArg] = process.argv.slice(2);
/** Initiations a second; 0: as fast as it can. */
const rate = Number(rateArg ?? 0);
const target = parsePublicKey(targetKey);
const rng = (n: number) => new Uint8Array(randomBytes(n));
const messages: Uint8Array[] = [];
for (let i = 0; i < 256; i++) {
  const privateKey = generatePrivateKey(rng);
  const identity = { privateKey, publicKey: publicKeyOf(privateKey) };
  const msg = createInitiation(identity, new Handshake(identity, target, null), i, Date.now(), rng)!;
  new CookieGenerator(target, 120_000).addMacs(msg, 0);
  messages.push(msg);
}
const sock = dgram.createSocket('udp4');
sock.on('message', () => {});
const until = Date.now() + Number(secondsArg) * 1000;
let sent = 0;
const burst = (): void => {
  if (Date.now() > until) {
    process.stdout.write(`sent ${sent}\n`);
    sock.close();
    return;
  }
  if (rate > 0) {
    // A hundredth of a second's worth every 10 ms: a steady load, not a busy loop.
    for (let i = 0; i < Math.max(1, Math.round(rate / 100)); i++) sock.send(messages[sent++ % messages.length], Number(portArg), host);
    setTimeout(burst, 10);
    return;
  }
  for (let i = 0; i < 64; i++) sock.send(messages[sent++ % messages.length], Number(portArg), host);
  setImmediate(burst);
};
burst();
