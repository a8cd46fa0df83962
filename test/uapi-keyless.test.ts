// An interface with no private key (meshd-wireguard starts so, as wireguard-go does): get=1 has no
// private_key line, no handshake is sent however much traffic waits, a key set over the UAPI
// starts them, and the all-zero key removes it again.
import t from 'tap';
import { generatePrivateKey } from '../src/crypto/keys.js';
import { applySet, formatGet } from '../src/uapi/uapi.js';
import { collect, makePair, pump, rng } from './helpers/device-pair.js';
import { ipv4Packet } from './helpers/ip-packet.js';

t.test('no key: no private_key, no handshakes; a key over the UAPI brings them', async (t) => {
  const p = makePair();
  const realKey = p.a.identity.privateKey;
  p.a.clearPrivateKey(generatePrivateKey(rng));
  t.notMatch(formatGet(p.a, 51820), /private_key=/, 'get=1 lists no private key');
  t.match(formatGet(p.a, 51820), /^public_key=/m, 'but the peers');
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  collect(p);
  t.equal(p.fromA.length, 0, 'traffic for a peer sends no handshake');
  const r = applySet(p.a, [`private_key=${Buffer.from(realKey).toString('hex')}`]);
  t.equal(r.errno, 0);
  t.ok(p.a.hasKey, 'the key is set');
  t.match(formatGet(p.a, 51820), new RegExp(`^private_key=${Buffer.from(realKey).toString('hex')}$`, 'm'));
  p.a.inside(ipv4Packet('10.0.0.1', '10.0.0.2'));
  pump(p);
  t.ok(p.tunB.length >= 1, 'with the key, the handshake completes and the packet arrives');
  applySet(p.a, [`private_key=${'0'.repeat(64)}`]);
  t.notOk(p.a.hasKey, 'the all-zero key removes it (as wireguard-go)');
  t.notMatch(formatGet(p.a, 51820), /private_key=/);
});
