// A relay client for tests, run inside a lab namespace (node dist/test/helpers/roster-client.js):
//   fetch   URL CA PRIVKEY MESHKEY          subscribe with serial 0; print {"serial": N} of the roster it gets
//   publish URL CA PRIVKEY MESHKEY FILE…    publish each file's bytes; print {"held": [serial after each]}
import { readFileSync } from 'node:fs';
import { RelayClient } from '../../src/transport/relay-client.js';
import { parsePrivateKey, publicKeyOf } from '../../src/crypto/keys.js';
import { parseMeshPublicKey } from '../../src/crypto/ed25519.js';
import { checkRoster } from '../../src/mesh/roster.js';
import { createLogger } from '../../src/log.js';

const [mode, url, ca, privB64, meshB64, ...files] = process.argv.slice(2);
const priv = parsePrivateKey(privB64);
const meshKey = parseMeshPublicKey(meshB64)!;
const held: number[] = [];
let next = 0;
const timer = setTimeout(() => {
  process.stdout.write(JSON.stringify({ error: 'timeout', held }) + '\n');
  process.exit(2);
}, 15_000);
const c = new RelayClient(url, () => ({ privateKey: priv, publicKey: publicKeyOf(priv) }), readFileSync(ca), {
  onPacket: () => {},
  onStateChange: (rc) => {
    if (!rc.connected) return;
    if (mode === 'fetch') rc.subscribe(meshKey, 0);
    else if (files.length) rc.publish(meshKey, new Uint8Array(readFileSync(files[next])));
  },
  onRoster: (_k, signed) => {
    if (mode !== 'fetch') return;
    const r = checkRoster(signed, meshKey, 0);
    done({ serial: r.ok ? r.roster.serial : null, reason: r.ok ? null : r.reason });
  },
  onRosterHeld: (_k, serial) => {
    if (mode !== 'publish') return;
    held.push(serial);
    next++;
    if (next >= files.length) done({ held });
    else c.publish(meshKey, new Uint8Array(readFileSync(files[next])));
  },
}, createLogger('error'));
function done(out: unknown): void {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(out) + '\n');
  c.stop();
  process.exit(0);
}
c.start();
