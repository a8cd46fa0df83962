// The inviting daemon's redeemer, on real files: the first valid redeem adds the joining host's own
// key as a peer; a retransmission of it is answered the same; a late, second or forged use is refused.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { InviteRedeemer } from '../src/daemon/invites.js';
import { invite } from '../src/cli/invite.js';
import { decodeInvitation, loadInvites, saveInvites } from '../src/config/invites.js';
import { parseConfig } from '../src/config/config.js';
import { generatePrivateKey, keyToBase64, parsePrivateKey, publicKeyOf } from '../src/crypto/keys.js';
import { discoKey, openDisco, sealDisco } from '../src/crypto/disco-box.js';
import { decodeDiscoEnvelope, decodeDiscoMessage, encodeDiscoEnvelope, encodeDiscoMessage, REDEEM_EXPIRED, REDEEM_OK, REDEEM_UNKNOWN, REDEEM_USED } from '../src/wire/disco.js';
import { sleep } from './helpers/lab.js';
import { tempDir } from './helpers/temp-dir.js';

const rng = (n: number) => new Uint8Array(randomBytes(n));

async function setup() {
  const dir = tempDir('meshd-redeem-');
  const file = join(dir, 'mesh0.conf');
  const host = generatePrivateKey(rng);
  writeFileSync(file, `[Interface]\nPrivateKey = ${keyToBase64(host)}\nAddress = 10.77.0.1/24\n`, { mode: 0o600 });
  let reloads = 0;
  const peers = new Set<string>();
  const r = new InviteRedeemer({
    configFile: file,
    iface: 'mesh0',
    identity: () => ({ privateKey: host, publicKey: publicKeyOf(host) }),
    isPeer: (key) => peers.has(keyToBase64(key)),
    reload: async () => {
      reloads++;
    },
    log: () => {},
  });
  return { file, host, r, peers, reloads: () => reloads };
}

/** Sends a redeem sealed with the invitation's enrollment key; resolves with the status answered. */
function redeem(r: InviteRedeemer, host: Uint8Array, enrollPriv: Uint8Array, token: Uint8Array, newKey: Uint8Array): Promise<number> {
  const enrollPub = publicKeyOf(enrollPriv as never);
  const key = discoKey(enrollPriv, publicKeyOf(host as never))!;
  const nonce = rng(24);
  const msg = encodeDiscoEnvelope(enrollPub, nonce, sealDisco(key, nonce, encodeDiscoMessage({ type: 'redeem', token, newKey }), enrollPub));
  return new Promise((resolve) => {
    const handled = r.handle(msg, (reply) => {
      const env = decodeDiscoEnvelope(reply)!;
      const m = decodeDiscoMessage(openDisco(key, env.nonce, env.sealed, env.sender)!);
      resolve(m?.type === 'redeem-result' ? m.status : -1);
    });
    if (!handled) resolve(-2);
  });
}

t.test('first valid redeem wins; retransmission is idempotent; second, late and forged uses are refused', async (t) => {
  const s = await setup();
  const inv = decodeInvitation((await invite(s.file, { name: 'laptop' })).invitation);
  const enroll = parsePrivateKey(inv.enrollmentKey!);
  const token = new Uint8Array(Buffer.from(inv.token, 'base64url'));
  const laptop = publicKeyOf(generatePrivateKey(rng));

  t.equal(await redeem(s.r, s.host, enroll, rng(16), laptop), REDEEM_UNKNOWN, 'a wrong token is refused');
  t.equal(await redeem(s.r, s.host, enroll, token, laptop), REDEEM_OK, 'the first valid redeem is accepted');
  t.equal(s.reloads(), 1, 'and applied to the running daemon');
  const cfg = parseConfig(readFileSync(s.file, 'utf8'), s.file);
  t.equal(cfg.peers.length, 1);
  t.equal(keyToBase64(cfg.peers[0].publicKey), keyToBase64(laptop), 'the joining host\'s own key is the peer');
  t.equal(cfg.peers[0].name, 'laptop');
  t.equal(await redeem(s.r, s.host, enroll, token, laptop), REDEEM_OK, 'a retransmission gets the same answer');
  t.equal(parseConfig(readFileSync(s.file, 'utf8'), s.file).peers.length, 1, 'without adding the peer twice');
  const thief = publicKeyOf(generatePrivateKey(rng));
  t.equal(await redeem(s.r, s.host, enroll, token, thief), REDEEM_USED, 'a second use (another key) is refused');

  const late = decodeInvitation((await invite(s.file, { name: 'late' })).invitation);
  const list = loadInvites(s.file);
  list.find((p) => p.name === 'late')!.expiresAt = Date.now() - 1;
  saveInvites(s.file, list);
  await sleep(1100); // the redeemer re-reads the file at most once a second
  t.equal(await redeem(s.r, s.host, parsePrivateKey(late.enrollmentKey!), new Uint8Array(Buffer.from(late.token, 'base64url')), publicKeyOf(generatePrivateKey(rng))), REDEEM_EXPIRED, 'a late use is refused by the inviting host');
  t.equal(parseConfig(readFileSync(s.file, 'utf8'), s.file).peers.length, 1, 'nothing added');

  const stranger = generatePrivateKey(rng);
  t.equal(await redeem(s.r, s.host, stranger, token, laptop), -2, 'a key that is not a pending invitation is not handled at all');
});

t.test("a peer's disco goes on to discovery: not taken for a redeem, CONFIG.invites not consulted", async (t) => {
  const s = await setup();
  const inv = decodeInvitation((await invite(s.file, { name: 'phone' })).invitation);
  const enroll = parsePrivateKey(inv.enrollmentKey!);
  const token = new Uint8Array(Buffer.from(inv.token, 'base64url'));
  // An enrollment key never is a peer's key; made one here to show the check comes first.
  s.peers.add(keyToBase64(publicKeyOf(enroll)));
  t.equal(await redeem(s.r, s.host, enroll, token, publicKeyOf(generatePrivateKey(rng))), -2, 'not handled');
  t.equal(loadInvites(s.file).find((p) => p.name === 'phone')!.usedAt, null, 'the invitation stays unused');
  s.peers.clear();
  t.equal(await redeem(s.r, s.host, enroll, token, publicKeyOf(generatePrivateKey(rng))), REDEEM_OK, 'from a key that is no peer, the same redeem is taken');
});
