// meshd invite / join. The inviting host records a pending invitation (token hash, enrollment key,
// reserved address) and prints one line; the new host generates its own key and redeems the line
// with the inviting daemon (sealed disco over the relay or UDP). Only then is it added as a peer.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join as joinPath } from 'node:path';
import dgram from 'node:dgram';
import { generatePrivateKey, keyId, keyToBase64, parsePrivateKey, parsePublicKey, publicKeyOf, type NodePrivateKey } from '../crypto/keys.js';
import { discoKey, openDisco, sealDisco } from '../crypto/disco-box.js';
import { ConfigError, MeshdError, UsageError } from '../errors.js';
import { parseConfig, parseHostPort, rosterFile } from '../config/config.js';
import { meshKeyToBase64 } from '../crypto/ed25519.js';
import { validMemberName } from '../mesh/roster.js';
import { addPending } from '../mesh/edit.js';
import { editRoster } from '../mesh/admin.js';
import { fetchRoster, freeMemberAddresses, groupsOf, publishRoster, reservedByMeshInvites, type PublishResult } from './mesh.js';
import { formatCidr } from '../tunnel/cidr.js';
import { allocateAddresses } from '../config/allocate.js';
import { withFileLock, writeFileAtomic } from '../config/write.js';
import { DEFAULT_INVITE_TTL_MS, decodeInvitation, encodeInvitation, loadInvites, saveInvites, tokenHash, type Invitation } from '../config/invites.js';
import { formatIpAddr, parseCidr } from '../tunnel/cidr.js';
import { decodeDiscoEnvelope, decodeDiscoMessage, encodeDiscoEnvelope, encodeDiscoMessage, INVITE_TOKEN_LEN, REDEEM_EXPIRED, REDEEM_OK, REDEEM_USED } from '../wire/disco.js';
import { isDisco } from '../wire/classify.js';
import { RelayClient } from '../transport/relay-client.js';
import { reservedByInvites } from './peer.js';
import { createLogger } from '../log.js';
import { parseDuration } from './duration.js';

const rng = (n: number) => new Uint8Array(randomBytes(n));

export { parseDuration };

/**
 * The invitation's enrollment key: the key the new host made itself (`--public-key`, no private half
 * in the line), or a fresh one-time pair.
 */
function enrollmentKey(publicKey: string | undefined): { enrollPriv: string | null; enrollPub: string } {
  if (publicKey) {
    try {
      return { enrollPriv: null, enrollPub: keyToBase64(parsePublicKey(publicKey)) };
    } catch {
      throw new UsageError(`--public-key: "${publicKey}" is not a base64 public key`);
    }
  }
  const k = generatePrivateKey(rng);
  return { enrollPriv: keyToBase64(k), enrollPub: keyToBase64(publicKeyOf(k)) };
}

export interface InviteOptions {
  name: string;
  publicKey?: string;
  expires?: string;
  endpoint?: string;
  inviterName?: string;
  groups?: string;
}

export async function invite(file: string, o: InviteOptions): Promise<{ invitation: string; addresses: string[]; expiresAt: number; id: string }> {
  if (parseConfig(readFileSync(file, 'utf8'), file).iface.meshKey) return meshInvite(file, o);
  if (o.groups !== undefined) throw new UsageError('--groups: only for a mesh (this config has no MeshKey)');
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(o.name)) throw new UsageError(`--name: "${o.name}" is not a valid name (letters, digits, _ . -)`);
  if (o.endpoint !== undefined && !parseHostPort(o.endpoint)) throw new UsageError(`--endpoint: "${o.endpoint}" is not host:port`);
  const ttl = o.expires ? parseDuration(o.expires) : DEFAULT_INVITE_TTL_MS;
  return withFileLock(file, () => {
    const cfg = parseConfig(readFileSync(file, 'utf8'), file);
    const pending = loadInvites(file);
    const now = Date.now();
    if (cfg.peers.some((p) => p.name === o.name) || pending.some((p) => p.name === o.name && p.usedAt === null && p.expiresAt > now)) {
      throw new ConfigError(`${file}: a peer or pending invitation named ${o.name} already exists`);
    }
    const { enrollPriv, enrollPub } = enrollmentKey(o.publicKey);
    if (o.publicKey && cfg.peers.some((p) => keyId(p.publicKey) === keyId(parsePublicKey(enrollPub)))) throw new ConfigError(`${file}: a peer with public key ${enrollPub} already exists`);
    const reserved = reservedByInvites(file);
    const allowedIps = allocateAddresses(cfg, reserved);
    // The new host's addresses use the mesh's prefix length (the inviting interface's).
    const addresses = allowedIps.map((a) => {
      const c = parseCidr(a)!;
      const iface = cfg.iface.addresses.find((x) => x.version === c.version);
      return `${formatIpAddr(c)}/${iface ? iface.bits : c.version === 4 ? 10 : 64}`;
    });
    const token = rng(INVITE_TOKEN_LEN);
    const id = randomBytes(4).toString('hex');
    const expiresAt = now + ttl;
    pending.push({ id, tokenHash: tokenHash(token), enrollmentPublicKey: enrollPub, name: o.name, allowedIps, expiresAt, usedAt: null, usedBy: null });
    saveInvites(file, pending);
    const inv: Invitation = {
      v: 1,
      id,
      token: Buffer.from(token).toString('base64url'),
      enrollmentKey: enrollPriv,
      enrollmentPublicKey: enrollPub,
      name: o.name,
      addresses,
      expiresAt,
      inviter: {
        publicKey: keyToBase64(publicKeyOf(cfg.iface.privateKey)),
        name: o.inviterName ?? (hostname().replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'inviter'),
        endpoint: o.endpoint ?? null,
        allowedIps: cfg.iface.addresses.map((a) => `${formatIpAddr(a)}/${a.version === 4 ? 32 : 128}`),
      },
      relays: cfg.iface.relays,
      stun: cfg.iface.stun.map((s) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`),
      relayCa: cfg.iface.relayCa ? cfg.iface.relayCa.toString('utf8') : null,
      mtu: cfg.iface.mtu,
    };
    return { invitation: encodeInvitation(inv), addresses, expiresAt, id };
  });
}

/**
 * An invitation into a mesh (the config has MeshKey; only the admin host can sign): the enrollment
 * key goes into the roster as pending (so a --mesh-key relay lets its redeem reach this host), the
 * address is reserved from the roster's prefixes, and the redeem adds the new host as a member.
 */
async function meshInvite(file: string, o: InviteOptions): Promise<{ invitation: string; addresses: string[]; expiresAt: number; id: string; published: PublishResult }> {
  const name = o.name.toLowerCase();
  if (!validMemberName(name)) throw new UsageError(`--name: "${o.name}" is not a member name (letters, digits and inner hyphens, at most 63)`);
  if (o.endpoint !== undefined && !parseHostPort(o.endpoint)) throw new UsageError(`--endpoint: "${o.endpoint}" is not host:port`);
  const groups = groupsOf(o.groups);
  const ttl = o.expires ? parseDuration(o.expires) : DEFAULT_INVITE_TTL_MS;
  const cfg = parseConfig(readFileSync(file, 'utf8'), file);
  const own = publicKeyOf(cfg.iface.privateKey);
  const { enrollPriv, enrollPub } = enrollmentKey(o.publicKey);
  const now = Date.now();
  const expiresAt = now + ttl;
  const token = rng(INVITE_TOKEN_LEN);
  const id = randomBytes(4).toString('hex');
  const { roster, result } = await withFileLock(file, () =>
    editRoster(file, (doc, nowMs) => {
      if (doc.members.some((m) => m.name === name)) throw new ConfigError(`a member is already called "${name}"`);
      if (doc.members.some((m) => keyToBase64(m.publicKey) === enrollPub)) throw new ConfigError(`the key ${enrollPub} is already a member`);
      const pending = loadInvites(file);
      if (pending.some((p) => p.name === name && p.usedAt === null && p.expiresAt > nowMs)) throw new ConfigError(`${file}: a pending invitation named ${name} already exists`);
      const addrs = freeMemberAddresses(doc, reservedByMeshInvites(file));
      const next = addPending(doc, { key: parsePublicKey(enrollPub), name, expiresMs: expiresAt, inviter: own }, nowMs);
      pending.push({ id, tokenHash: tokenHash(token), enrollmentPublicKey: enrollPub, name, allowedIps: addrs.map(formatCidr), expiresAt, usedAt: null, usedBy: null, mesh: true, groups });
      saveInvites(file, pending);
      return { doc: next, result: addrs };
    }),
  );
  const addresses = result.map((a) => {
    const p = roster.prefixes.find((x) => x.version === a.version)!;
    return `${formatIpAddr(a)}/${p.bits}`;
  });
  const admin = roster.members.find((m) => keyId(m.publicKey) === keyId(own));
  const inv: Invitation = {
    v: 1,
    id,
    token: Buffer.from(token).toString('base64url'),
    enrollmentKey: enrollPriv,
    enrollmentPublicKey: enrollPub,
    name,
    addresses,
    expiresAt,
    inviter: {
      publicKey: keyToBase64(own),
      name: admin?.name ?? 'admin',
      endpoint: o.endpoint ?? null,
      allowedIps: (admin?.addresses ?? []).map(formatCidr),
    },
    relays: cfg.iface.relays,
    stun: cfg.iface.stun.map((s) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`),
    relayCa: cfg.iface.relayCa ? cfg.iface.relayCa.toString('utf8') : null,
    mtu: cfg.iface.mtu,
    meshKey: meshKeyToBase64(cfg.iface.meshKey!),
  };
  return { invitation: encodeInvitation(inv), addresses, expiresAt, id, published: await publishRoster(file, roster) };
}

export interface JoinOptions {
  interface?: string;
  configDir?: string;
  privateKeyFile?: string;
  force?: boolean;
  timeoutMs?: number;
}

/** Sends the redeem over every way to the inviting host until it answers (or time runs out). */
async function redeem(inv: Invitation, enrollPriv: NodePrivateKey, ownPub: Uint8Array, timeoutMs: number): Promise<number> {
  const inviterKey = parsePublicKey(inv.inviter.publicKey);
  const enrollPub = publicKeyOf(enrollPriv);
  const key = discoKey(enrollPriv, inviterKey);
  if (!key) throw new UsageError('the invitation names an unusable inviter key');
  const message = () => {
    const nonce = rng(24);
    return encodeDiscoEnvelope(enrollPub, nonce, sealDisco(key, nonce, encodeDiscoMessage({ type: 'redeem', token: Buffer.from(inv.token, 'base64url'), newKey: ownPub }), enrollPub));
  };
  const log = createLogger(process.env.MESHD_LOG_LEVEL ?? 'warn');
  return new Promise((resolve, reject) => {
    const cleanups: (() => void)[] = [];
    const done = (fn: () => void) => {
      for (const c of cleanups) c();
      fn();
    };
    const onReply = (b: Uint8Array) => {
      if (!isDisco(b)) return;
      const env = decodeDiscoEnvelope(b);
      if (!env || keyId(env.sender) !== keyId(inviterKey)) return;
      const plain = openDisco(key, env.nonce, env.sealed, env.sender);
      const m = plain ? decodeDiscoMessage(plain) : null;
      if (m?.type === 'redeem-result') done(() => resolve(m.status));
    };
    const senders: (() => void)[] = [];
    const ca = inv.relayCa ? Buffer.from(inv.relayCa) : undefined;
    for (const url of inv.relays) {
      const c = new RelayClient(url, () => ({ privateKey: enrollPriv, publicKey: enrollPub }), ca, {
        onPacket: (src, packet) => {
          if (keyId(src) === keyId(inviterKey)) onReply(packet);
        },
        // The first redeem goes the moment the relay takes it, not at the next tick.
        onStateChange: (rc) => {
          if (rc.connected) rc.send(inviterKey, message());
        },
      }, log);
      c.start();
      cleanups.push(() => c.stop());
      senders.push(() => void c.send(inviterKey, message()));
    }
    const ep = inv.inviter.endpoint ? parseHostPort(inv.inviter.endpoint) : null;
    if (ep) {
      const sock = dgram.createSocket(ep.host.includes(':') ? 'udp6' : 'udp4');
      sock.on('message', (m) => onReply(m));
      sock.on('error', () => {});
      cleanups.push(() => sock.close());
      senders.push(() => sock.send(message(), ep.port, ep.host));
    }
    if (senders.length === 0) return reject(new UsageError('the invitation gives no way to reach the inviting host (no relay, no endpoint)'));
    const tick = setInterval(() => senders.forEach((s) => s()), 1000);
    const first = setTimeout(() => senders.forEach((s) => s()), 300);
    const timer = setTimeout(() => done(() => reject(new MeshdError('EJOIN', `could not reach the inviting host within ${timeoutMs / 1000} s (is its meshd running, and its relay or endpoint reachable?)`))), timeoutMs);
    cleanups.push(() => clearInterval(tick), () => clearTimeout(first), () => clearTimeout(timer));
  });
}

export async function join(line: string, o: JoinOptions): Promise<{ file: string; interface: string; addresses: string[]; roster?: { serial: number; members: number } | null }> {
  const inv = decodeInvitation(line);
  if (Date.now() > inv.expiresAt) throw new UsageError(`the invitation expired at ${new Date(inv.expiresAt).toISOString()}: ask for a new one`);
  const iface = o.interface ?? 'meshd0';
  if (!/^[a-zA-Z0-9_=+.-]{1,15}$/.test(iface)) throw new UsageError(`--interface: "${iface}" is not a valid interface name`);
  const dir = o.configDir ?? '/etc/meshd';
  const file = joinPath(dir, `${iface}.conf`);
  if (existsSync(file) && !o.force) throw new UsageError(`${file} exists: pass --force to overwrite it`);

  let enrollPriv: NodePrivateKey;
  let ownPriv: NodePrivateKey;
  if (inv.enrollmentKey) {
    enrollPriv = parsePrivateKey(inv.enrollmentKey);
    ownPriv = generatePrivateKey(rng); // this host's own key: it never leaves this host
  } else {
    if (!o.privateKeyFile) throw new UsageError('this invitation was made for a key this host generated: pass --private-key-file');
    try {
      ownPriv = parsePrivateKey(readFileSync(o.privateKeyFile, 'utf8'));
    } catch {
      throw new UsageError(`--private-key-file: ${o.privateKeyFile} does not hold a base64 private key`);
    }
    if (keyId(publicKeyOf(ownPriv)) !== keyId(parsePublicKey(inv.enrollmentPublicKey))) throw new UsageError('--private-key-file does not match the public key the invitation was made for');
    enrollPriv = ownPriv;
  }
  const status = await redeem(inv, enrollPriv, publicKeyOf(ownPriv), o.timeoutMs ?? 20_000);
  if (status === REDEEM_USED) throw new UsageError('the inviting host refused: this invitation was already used');
  if (status === REDEEM_EXPIRED) throw new UsageError('the inviting host refused: this invitation expired');
  if (status !== REDEEM_OK) throw new UsageError('the inviting host does not know this invitation');

  mkdirSync(dir, { recursive: true, mode: 0o755 });
  let caLine: string[] = [];
  if (inv.relayCa) {
    const caFile = joinPath(dir, `${iface}-relay-ca.pem`);
    writeFileSync(caFile, inv.relayCa, { mode: 0o644 });
    caLine = [`RelayCAFile = ${caFile}`];
  }
  const ifaceLines = [
    `# written by meshd join (invitation ${inv.id}) on ${new Date().toISOString()}`,
    '[Interface]',
    `PrivateKey = ${keyToBase64(ownPriv)}`,
    `Address = ${inv.addresses.join(', ')}`,
    'ListenPort = 51820',
    ...(typeof inv.mtu === 'number' ? [`MTU = ${inv.mtu}`] : []),
    ...inv.relays.map((r) => `Relay = ${r}`),
    ...caLine,
    ...(inv.stun.length ? [`STUN = ${inv.stun.join(', ')}`] : []),
  ];
  if (inv.meshKey) {
    // A mesh member: no [Peer] sections; the roster names every member, the admin host among them.
    const meshText = [...ifaceLines, `MeshKey = ${inv.meshKey}`, ''].join('\n');
    const cfg = parseConfig(meshText, file, iface);
    writeFileAtomic(file, meshText);
    // The admin host published the roster with this host in it after it answered: fetch it, so the
    // first start has it even with every relay down.
    const roster = await fetchRoster(cfg, o.timeoutMs ?? 10_000);
    if (roster) writeFileAtomic(rosterFile(file), roster.signed);
    return { file, interface: iface, addresses: inv.addresses, roster: roster ? { serial: roster.serial, members: roster.members.length } : null };
  }
  const text = [
    ...ifaceLines,
    '',
    '[Peer]',
    `Name = ${inv.inviter.name}`,
    `PublicKey = ${inv.inviter.publicKey}`,
    `AllowedIPs = ${inv.inviter.allowedIps.join(', ')}`,
    ...(inv.inviter.endpoint ? [`Endpoint = ${inv.inviter.endpoint}`] : []),
    'PersistentKeepalive = 25',
    '',
  ].join('\n');
  parseConfig(text, file, iface);
  writeFileAtomic(file, text);
  return { file, interface: iface, addresses: inv.addresses };
}
