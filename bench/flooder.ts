// Sends mac1-valid handshake initiations from keys that are not peers at a meshd host, as fast as
// it can for a bounded time (run inside a benchmark namespace):
//   node flooder.js TARGET_PUBLIC_KEY HOST PORT SECONDS
// Prints "sent N" when done. Cookie replies it receives are ignored (it does not retry with mac2).
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { generatePrivateKey, parsePublicKey, publicKeyOf } from '../src/crypto/keys.js';
import { Handshake, createInitiation } from '../src/noise/handshake.js';
import { CookieGenerator } from '../src/noise/cookie.js';

const [targetKey, host, portArg, secondsArg] = process.argv.slice(2);
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
  for (let i = 0; i < 64; i++) sock.send(messages[sent++ % messages.length], Number(portArg), host);
  setImmediate(burst);
};
burst();
