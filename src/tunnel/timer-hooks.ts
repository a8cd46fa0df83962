// Timer hooks named for the events that move them (wireguard-go's timers.go, whitepaper §6).
// Each sets or clears a deadline on the peer; tickPeer() acts on the deadlines that pass.
import type { Device } from './device.js';
import type { Peer } from './peer.js';

/** Data after this long without any counts as the peer waking up (Device.noteWake). */
export const WAKE_AFTER_IDLE_MS = 1000;

/**
 * Every finite deadline goes through here, so the device knows its earliest one and its tick can
 * skip the scan over all peers until then (an idle daemon with 1,000 peers then costs next to nothing).
 */
export function arm(dev: Device, at: number): number {
  dev.due(at);
  return at;
}

/** We sent data: expect something back within KEEPALIVE + REKEY_TIMEOUT, or rekey. */
export function onDataSent(dev: Device, peer: Peer, now: number): void {
  if (now - peer.lastDataMs >= WAKE_AFTER_IDLE_MS) dev.noteWake(peer);
  peer.lastDataMs = now;
  if (peer.timers.newHandshakeAt === Infinity) {
    peer.timers.newHandshakeAt = arm(dev, now + dev.timers.keepaliveTimeoutMs + dev.timers.rekeyTimeoutMs + dev.jitterMs());
  }
}

/** We received data: answer with a keepalive if we send nothing within KEEPALIVE_TIMEOUT. */
export function onDataReceived(dev: Device, peer: Peer, now: number): void {
  if (now - peer.lastDataMs >= WAKE_AFTER_IDLE_MS) dev.noteWake(peer);
  peer.lastDataMs = now;
  if (peer.timers.sendKeepaliveAt === Infinity) peer.timers.sendKeepaliveAt = arm(dev, now + dev.timers.keepaliveTimeoutMs);
  else peer.timers.needAnotherKeepalive = true;
}

export function onAnyAuthenticatedPacketSent(peer: Peer): void {
  peer.timers.sendKeepaliveAt = Infinity;
}

export function onAnyAuthenticatedPacketReceived(peer: Peer): void {
  peer.timers.newHandshakeAt = Infinity;
}

export function onAnyAuthenticatedPacketTraversal(dev: Device, peer: Peer, now: number): void {
  if (peer.persistentKeepaliveSec > 0) peer.timers.persistentKeepaliveAt = arm(dev, now + peer.persistentKeepaliveSec * 1000);
}

export function onHandshakeInitiated(dev: Device, peer: Peer, now: number): void {
  peer.timers.retransmitHandshakeAt = arm(dev, now + dev.timers.rekeyTimeoutMs + dev.jitterMs());
  peer.timers.resendHandshakeAt = Infinity; // a new initiation supersedes any early re-send
}

export function onHandshakeComplete(dev: Device, peer: Peer): void {
  peer.timers.retransmitHandshakeAt = Infinity;
  peer.timers.resendHandshakeAt = Infinity;
  peer.timers.handshakeAttempts = 0;
  peer.timers.sentLastMinuteHandshake = false;
  peer.lastHandshakeWallMs = dev.clock.wall();
}

export function onSessionDerived(dev: Device, peer: Peer, now: number): void {
  peer.timers.zeroKeyMaterialAt = arm(dev, now + dev.timers.rejectAfterTimeMs * 3);
}
