// Runs N WireGuard peers in one process for the idle benchmark: each a sans-IO Device with its own
// UDP socket, configured with the meshd host as its peer (persistent keepalive off):
//   node idle-peers.js MESHD_PUBLIC_KEY MESHD_ENDPOINT BASE_PORT KEYS_FILE
// KEYS_FILE has one base64 private key per line. Prints "up N" once every socket is bound.
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parsePrivateKey, parsePublicKey } from '../src/crypto/keys.js';
import { selectTransportAead } from '../src/crypto/transport-aead.js';
import { nativeAead } from '../src/crypto/native-aead.js';
import { Device } from '../src/tunnel/device.js';
import { parseCidr } from '../src/tunnel/cidr.js';
import { parseEndpointLiteral } from '../src/tunnel/endpoint.js';

const [hostKey, hostEp, basePortArg, keysFile] = process.argv.slice(2);
const endpoint = parseEndpointLiteral(hostEp)!;
const keys = readFileSync(keysFile, 'utf8').trim().split('\n');
const clock = { now: () => performance.now(), wall: () => Date.now() };
const rng = (n: number) => new Uint8Array(randomBytes(n));
const aead = selectTransportAead(undefined, nativeAead);
const devices: { dev: Device; sock: dgram.Socket }[] = [];

async function main(): Promise<void> {
  for (let i = 0; i < keys.length; i++) {
    const dev = new Device({ privateKey: parsePrivateKey(keys[i]), clock, rng, aead, mtu: 1420 });
    dev.addPeer({ publicKey: parsePublicKey(hostKey), endpoint }, [parseCidr('10.77.0.1/32')!]);
    const sock = dgram.createSocket('udp4');
    await new Promise<void>((r) => sock.bind(Number(basePortArg) + i, () => r()));
    const flush = () => {
      for (const d of dev.out.net) if (d.to) sock.send(d.data, d.to.port, d.to.address);
      dev.out.clear();
    };
    sock.on('message', (m, r) => {
      if (m[0] >= 1 && m[0] <= 4) dev.outside(m, { address: r.address, port: r.port });
      flush();
    });
    devices.push({ dev, sock });
    // One packet each starts the handshake; after that the peer stays quiet.
    const hello = new Uint8Array(28);
    hello[0] = 0x45;
    hello[3] = 28;
    hello.set([10, 77, 100 + (i >> 8), i & 255], 12); // source: this peer's mesh address
    hello.set([10, 77, 0, 1], 16); // destination: the meshd host
    dev.inside(hello);
    flush();
  }
  setInterval(() => {
    for (const { dev, sock } of devices) {
      dev.tick();
      for (const d of dev.out.net) if (d.to) sock.send(d.data, d.to.port, d.to.address);
      dev.out.clear();
    }
  }, 250);
  process.stdout.write(`up ${devices.length}\n`);
}

void main();
