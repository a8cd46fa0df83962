// Ed25519 through node:crypto (src/crypto/ed25519.ts) against RFC 8032 §7.1 test 1 and noble.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { generateMeshKey, meshPublicKeyOf, signEd25519, verifyEd25519, type MeshPrivateKey } from '../src/crypto/ed25519.js';

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));

t.test('RFC 8032 test 1 (empty message)', async (t) => {
  const sk = hex('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60') as MeshPrivateKey;
  const pk = hex('d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a');
  const sig = 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b';
  t.equal(Buffer.from(meshPublicKeyOf(sk)).toString('hex'), Buffer.from(pk).toString('hex'));
  t.equal(Buffer.from(signEd25519(sk, new Uint8Array(0))).toString('hex'), sig);
  t.ok(verifyEd25519(pk, new Uint8Array(0), hex(sig)));
});

t.test('agrees with noble; a changed message, signature or key fails; bad input is false, not a throw', async (t) => {
  const rng = (n: number) => new Uint8Array(randomBytes(n));
  for (let i = 0; i < 20; i++) {
    const { privateKey, publicKey } = generateMeshKey(rng);
    t.same([...publicKey], [...ed25519.getPublicKey(privateKey)]);
    const msg = rng(1 + i * 50);
    const sig = signEd25519(privateKey, msg);
    t.ok(ed25519.verify(sig, msg, publicKey), 'noble verifies ours');
    t.ok(verifyEd25519(publicKey, msg, sig));
    const m2 = Uint8Array.from(msg);
    m2[0] ^= 1;
    t.notOk(verifyEd25519(publicKey, m2, sig));
  }
  t.notOk(verifyEd25519(new Uint8Array(31), new Uint8Array(1), new Uint8Array(64)), 'short key');
  t.notOk(verifyEd25519(new Uint8Array(32), new Uint8Array(1), new Uint8Array(64)), 'zero key');
  t.notOk(verifyEd25519(rng(32), new Uint8Array(1), new Uint8Array(63)), 'short signature');
});
