// The periodic tick: acts on each peer's deadlines (retransmit, keepalive, rekey, key expiry).
import type { Device } from './device.js';
import type { Peer } from './peer.js';
import { sendHandshakeInitiation, sendKeepalive } from './inside.js';
import { arm } from './timer-hooks.js';
import { objectArray } from './clear-array.js';

export function maxHandshakeAttempts(dev: Device): number {
  return Math.floor(dev.timers.rekeyAttemptTimeMs / dev.timers.rekeyTimeoutMs);
}

export function tickPeer(dev: Device, peer: Peer, now: number): void {
  const t = peer.timers;
  // Most peers have nothing due: one pass of comparisons and out.
  if (now < t.retransmitHandshakeAt && now < t.resendHandshakeAt && now < t.sendKeepaliveAt && now < t.newHandshakeAt && now < t.zeroKeyMaterialAt && now < t.persistentKeepaliveAt) return;

  if (now >= t.resendHandshakeAt) {
    // The peer became reachable and no response came within the grace: the initiation was lost.
    t.resendHandshakeAt = Infinity;
    if (t.retransmitHandshakeAt !== Infinity) dev.handshakeNow(peer);
  }

  if (now >= t.retransmitHandshakeAt) {
    t.retransmitHandshakeAt = Infinity;
    if (t.handshakeAttempts >= maxHandshakeAttempts(dev)) {
      // REKEY_ATTEMPT_TIME has passed: give up, drop what waited, and schedule key zeroing.
      for (let i = 0; i < peer.staged.length; i++) dev.insideDrops.add('handshake-gave-up');
      peer.staged = objectArray();
      dev.unindexHandshake(peer);
      peer.handshake.clear();
      if (t.zeroKeyMaterialAt === Infinity) t.zeroKeyMaterialAt = arm(dev, now + dev.timers.rejectAfterTimeMs * 3);
      dev.out.events.push({ type: 'handshake-gave-up', peerId: peer.id });
    } else {
      t.handshakeAttempts++;
      sendHandshakeInitiation(dev, peer, true);
    }
  }

  if (now >= t.sendKeepaliveAt) {
    t.sendKeepaliveAt = Infinity;
    sendKeepalive(dev, peer);
    if (t.needAnotherKeepalive) {
      t.needAnotherKeepalive = false;
      t.sendKeepaliveAt = arm(dev, now + dev.timers.keepaliveTimeoutMs);
    }
  }

  if (now >= t.newHandshakeAt) {
    // Data went out and nothing came back for KEEPALIVE + REKEY_TIMEOUT: the session may be dead.
    t.newHandshakeAt = Infinity;
    sendHandshakeInitiation(dev, peer, false);
  }

  if (now >= t.zeroKeyMaterialAt) {
    t.zeroKeyMaterialAt = Infinity;
    for (const kp of peer.keypairs.clear()) dev.unindexKeypair(kp);
    dev.unindexHandshake(peer);
    peer.handshake.clear();
    dev.out.events.push({ type: 'keys-zeroed', peerId: peer.id });
  }

  if (now >= t.persistentKeepaliveAt) {
    t.persistentKeepaliveAt = Infinity;
    sendKeepalive(dev, peer);
  }
}

/** The earliest deadline a peer has (Infinity: nothing scheduled). */
export function earliestDeadline(peer: Peer): number {
  const t = peer.timers;
  return Math.min(t.retransmitHandshakeAt, t.resendHandshakeAt, t.sendKeepaliveAt, t.newHandshakeAt, t.zeroKeyMaterialAt, t.persistentKeepaliveAt);
}
