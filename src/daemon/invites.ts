// The inviting daemon's half of `meshd join`: a redeem from a pending invitation's enrollment key
// (not a peer yet) is checked against CONFIG.invites: the right token, unused, unexpired. The first
// valid redeem adds the joining host's own key as a [Peer] (with the reserved address) and marks the
// invitation used; a retransmission of that same redeem is answered again; anything else is refused.
import { keyId, keyToBase64, parsePublicKey, type NodePrivateKey } from '../crypto/keys.js';
import { discoKey, openDisco, sealDisco } from '../crypto/disco-box.js';
import { randomBytes } from 'node:crypto';
import { decodeDiscoEnvelope, decodeDiscoMessage, encodeDiscoEnvelope, encodeDiscoMessage, REDEEM_EXPIRED, REDEEM_OK, REDEEM_UNKNOWN, REDEEM_USED } from '../wire/disco.js';
import { invitesFile, loadInvites, saveInvites, tokenMatches, type PendingInvite } from '../config/invites.js';
import { statSync } from 'node:fs';
import { withFileLock } from '../config/write.js';
import { peerAddLocked } from '../cli/peer.js';
import { editRoster } from '../mesh/admin.js';
import { addMember } from '../mesh/edit.js';
import { parseCidr } from '../tunnel/cidr.js';

/** How often CONFIG.invites is re-read when strangers send disco (it changes only by meshd invite). */
const INVITES_CACHE_MS = 1000;
/** On a miss, how often the file's modification time may be checked for a newer invitation. */
const INVITES_STAT_MS = 50;

export interface RedeemContext {
  configFile: string;
  iface: string;
  identity(): { privateKey: NodePrivateKey; publicKey: Uint8Array };
  /**
   * Whether this key is one of the daemon's peers: their disco (heartbeats every 2 s per active peer)
   * is never a redeem, and goes on to discovery without a look at CONFIG.invites.
   */
  isPeer(key: Uint8Array): boolean;
  /** Applies the config file (the new peer) to the running daemon. */
  reload(): Promise<unknown>;
  /** In a mesh: takes the roster the redeem just signed (the new member) and publishes it. */
  mesh?: { reloadRoster(): Promise<unknown> } | null;
  log(msg: string, fields: Record<string, unknown>): void;
}

export class InviteRedeemer {
  private cache: PendingInvite[] = [];
  private cacheAtMs = -Infinity;
  private cacheMtimeMs = -1;
  private statAtMs = -Infinity;
  private readonly inFlight = new Map<string, Promise<number>>();
  /** What a mesh redeem does once its answer is sent (see redeem). */
  private readonly afterReply = new Map<string, () => Promise<unknown>>();

  constructor(private readonly ctx: RedeemContext) {}

  /** The pending invitation whose enrollment key sent this disco datagram, if any. */
  pendingFor(sender: Uint8Array): PendingInvite | undefined {
    const id = keyId(sender);
    const find = () => this.cache.find((p) => keyId(parsePublicKey(p.enrollmentPublicKey)) === id);
    const now = Date.now();
    if (now - this.cacheAtMs > INVITES_CACHE_MS) this.reloadInvites(now);
    let found = find();
    // An invitation made since the last read (meshd invite, a moment before the redeem): the file's
    // modification time says so, checked at most every INVITES_STAT_MS.
    if (!found && now - this.statAtMs > INVITES_STAT_MS) {
      this.statAtMs = now;
      let mtime = -1;
      try {
        mtime = statSync(invitesFile(this.ctx.configFile)).mtimeMs;
      } catch {
        // no invitations yet
      }
      if (mtime !== this.cacheMtimeMs) {
        this.reloadInvites(now);
        found = find();
      }
    }
    return found;
  }

  private reloadInvites(now: number): void {
    try {
      this.cacheMtimeMs = statSync(invitesFile(this.ctx.configFile)).mtimeMs;
      this.cache = loadInvites(this.ctx.configFile);
    } catch {
      this.cache = [];
      this.cacheMtimeMs = -1;
    }
    this.cacheAtMs = now;
  }

  /**
   * Handles a disco datagram from an enrollment key; `reply` sends the sealed result back the way
   * the redeem came. Returns false when the datagram is not a redeem from a pending invitation.
   */
  handle(b: Uint8Array, reply: (data: Uint8Array) => void): boolean {
    const env = decodeDiscoEnvelope(b);
    if (!env || this.ctx.isPeer(env.sender) || !this.pendingFor(env.sender)) return false;
    const key = discoKey(this.ctx.identity().privateKey, env.sender);
    const plain = key ? openDisco(key, env.nonce, env.sealed, env.sender) : null;
    const m = plain ? decodeDiscoMessage(plain) : null;
    if (!key || !m || m.type !== 'redeem') return false;
    const flightKey = `${keyId(env.sender)}:${keyId(m.newKey)}`;
    let p = this.inFlight.get(flightKey);
    if (!p) {
      p = this.redeem(env.sender, m.token, m.newKey, flightKey).finally(() => this.inFlight.delete(flightKey));
      this.inFlight.set(flightKey, p);
    }
    void p.then((status) => {
      const own = this.ctx.identity().publicKey;
      const nonce = new Uint8Array(randomBytes(24));
      reply(encodeDiscoEnvelope(own, nonce, sealDisco(key, nonce, encodeDiscoMessage({ type: 'redeem-result', status }), own)));
      const after = this.afterReply.get(flightKey);
      this.afterReply.delete(flightKey);
      if (after) void after().catch((err: Error) => this.ctx.log('the new roster could not be applied', { err: err.message }));
    });
    return true;
  }

  private async redeem(sender: Uint8Array, token: Uint8Array, newKey: Uint8Array, flightKey: string): Promise<number> {
    const file = this.ctx.configFile;
    let added = false;
    const status = await withFileLock(file, async () => {
      const list = loadInvites(file);
      const inv = list.find((p) => keyId(parsePublicKey(p.enrollmentPublicKey)) === keyId(sender));
      if (!inv || !tokenMatches(inv, token)) return REDEEM_UNKNOWN;
      const newKeyB64 = keyToBase64(newKey);
      if (inv.usedAt !== null) return inv.usedBy === newKeyB64 ? REDEEM_OK : REDEEM_USED;
      if (Date.now() > inv.expiresAt) return REDEEM_EXPIRED;
      if (inv.mesh) {
        // The new host becomes a member of the signed roster: every host (and relay) learns of it.
        await editRoster(file, (doc, now) => ({
          doc: addMember(doc, { name: inv.name, publicKey: parsePublicKey(newKeyB64), addresses: inv.allowedIps.map((a) => parseCidr(a)!), groups: inv.groups ?? [], enrolledWith: parsePublicKey(inv.enrollmentPublicKey) }, now),
          result: null,
        }));
      } else {
        peerAddLocked(file, { publicKey: newKeyB64, name: inv.name, allowedIps: inv.allowedIps.join(',') }, this.ctx.iface);
      }
      inv.usedAt = Date.now();
      inv.usedBy = newKeyB64;
      saveInvites(file, list);
      this.cacheAtMs = -Infinity;
      added = true;
      return REDEEM_OK;
    }).catch((err: Error) => {
      this.ctx.log('invitation could not be redeemed', { err: err.message });
      return REDEEM_UNKNOWN;
    });
    if (added) {
      // In a mesh the answer goes first: the new roster no longer lists the enrollment key as
      // pending, and a --mesh-key relay closes its connection as soon as it has that roster.
      if (this.ctx.mesh) this.afterReply.set(flightKey, this.ctx.mesh.reloadRoster);
      else await this.ctx.reload();
      this.ctx.log('invitation redeemed: new peer added', { peer: keyToBase64(newKey) });
    } else if (status !== REDEEM_OK) {
      this.ctx.log('invitation refused', { reason: status === REDEEM_USED ? 'already used' : status === REDEEM_EXPIRED ? 'expired' : 'unknown token' });
    }
    return status;
  }
}
