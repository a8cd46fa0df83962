// Inside → outside: a packet from the TUN device becomes a transport message to its peer.
//  1. Peek at the destination address; find the peer by longest-prefix match (AllowedIPs).
//  2. With a usable session, pad, seal and queue the datagram; else stage it and start a handshake.
//  3. Keep keys fresh: the initiator rekeys after REKEY_AFTER_TIME or REKEY_AFTER_MESSAGES.
import { copyBytes, sameBytes } from '../wire/bytes.js';
import { createInitiation } from '../noise/handshake.js';
import { MAX_STAGED_PACKETS, REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES } from '../noise/constants.js';
import type { Keypair } from '../noise/keypair.js';
import { IPV4_DST_OFF, IPV6_DST_OFF, ipVersion } from '../wire/ip.js';
import { IPV6_MIN_MTU, fragmentIpv4, ipv4DontFragment, packetTooBig } from '../wire/icmp.js';
import { AEAD_TAG_LEN } from '../crypto/aead.js';
import { MSG_TRANSPORT, OFF_DATA_COUNTER, OFF_DATA_RECEIVER, TRANSPORT_HEADER_SIZE, writeCounter, writeHeader, writeU32 } from '../wire/wireguard.js';
import type { Device } from './device.js';
import type { Peer } from './peer.js';
import { onAnyAuthenticatedPacketSent, onAnyAuthenticatedPacketTraversal, onDataSent, onHandshakeInitiated } from './timer-hooks.js';
import { objectArray } from './clear-array.js';

const EMPTY = new Uint8Array(0);
/** At most one "too big" answer per peer this often (as a router's ICMP rate limit). */
export const TOO_BIG_INTERVAL_MS = 10;

export function insidePacket(dev: Device, packet: Uint8Array): void {
  const v = ipVersion(packet, 0, packet.length);
  if (v === 0) {
    dev.insideDrops.add('not-ip');
    return;
  }
  const peer = dev.allowedIps.lookup(v, packet, v === 4 ? IPV4_DST_OFF : IPV6_DST_OFF);
  if (!peer) {
    dev.insideDrops.add('no-route');
    return;
  }
  if (isTooBig(peer, packet.length, v)) return tooBig(dev, peer, packet, 0, packet.length);
  toPeer(dev, peer, packet, dev.inPlace);
}

function toPeer(dev: Device, peer: Peer, packet: Uint8Array, inPlace: boolean): void {
  const now = dev.clock.now(); // once per packet: the clock is read on every path below
  const kp = usableKeypair(dev, peer, now);
  if (kp && peer.staged.length === 0) {
    sealAndQueue(dev, peer, kp, packet, inPlace, now);
    keepKeyFreshSending(dev, peer, now);
    return;
  }
  stage(dev, peer, copyBytes(packet));
  sendStaged(dev, peer);
}

/**
 * Whether a packet is larger than the peer's path MTU (Peer.mtu). IPv6 packets up to 1280 bytes
 * never are (no IPv6 link is smaller: they go as they are).
 */
function isTooBig(peer: Peer, len: number, v: 4 | 6): boolean {
  return peer.mtu !== 0 && len > peer.mtu && (v === 4 || len > IPV6_MIN_MTU);
}

/**
 * A packet too big for the peer's path (isTooBig). IPv4 without DF is fragmented and the fragments
 * sent; otherwise the packet is dropped (too-big) and an ICMP "fragmentation needed" / "packet too
 * big" naming the MTU goes back into the TUN, rate-limited per peer, so the sender's kernel lowers
 * its path MTU for the destination (TCP shrinks its segments).
 */
function tooBig(dev: Device, peer: Peer, b: Uint8Array, off: number, len: number): void {
  if (b[off] >> 4 === 4 && !ipv4DontFragment(b, off)) {
    const frags = fragmentIpv4(b, off, len, peer.mtu);
    if (frags) {
      for (const f of frags) toPeer(dev, peer, f, false);
      return;
    }
  }
  dev.insideDrops.add('too-big');
  const now = dev.clock.now();
  if (now - peer.tooBigAtMs < TOO_BIG_INTERVAL_MS) return;
  const answer = packetTooBig(b, off, len, peer.mtu);
  if (answer) {
    peer.tooBigAtMs = now;
    dev.out.tun.push(answer);
  }
}

/**
 * A batch of packets from the TUN, all in `buf` (packet i at offsets[i], lengths[i] long, with the
 * in-place head and tail room): the same as insidePacket for each, but consecutive packets for one
 * peer and session are sealed with one call (TransportAead.sealBatch) and queued as one run where
 * they lie (Outbox.runs). The destination lookup is done once per change of destination address.
 * offsets/lengths of sealed packets are rewritten to describe the messages.
 */
export function insideBatch(dev: Device, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, count: number): void {
  const seal = dev.aead.sealBatch;
  if (!dev.inPlace || !seal) {
    for (let i = 0; i < count; i++) insidePacket(dev, buf.subarray(offsets[i], offsets[i] + lengths[i]));
    return;
  }
  const now = dev.clock.now();
  let runPeer: Peer | null = null;
  let runKp: Keypair | null = null;
  let runStart = 0;
  let runLen = 0;
  // The previous packet's destination (its offset and version) and the peer it led to.
  let lastDst = -1;
  let lastV = 0;
  let lastPeer: Peer | null = null;
  const endRun = (): void => {
    if (runLen === 0) return;
    const peer = runPeer!;
    const kp = runKp!;
    const bytes = seal.call(dev.aead, kp.sendKey, kp.remoteIndex, kp.sendCounter, peer.mtu || dev.mtu, buf, offsets, lengths, runStart, runLen);
    if (bytes < 0) {
      for (let k = 0; k < runLen; k++) dev.insideDrops.add('seal-failed');
    } else {
      kp.sendCounter += runLen;
      dev.out.runs.push({ to: peer.endpoint, peerId: peer.id, buf, offsets, lengths, start: runStart, count: runLen });
      peer.txBytes += bytes;
      onDataSent(dev, peer, now);
      onAnyAuthenticatedPacketSent(peer);
      onAnyAuthenticatedPacketTraversal(dev, peer, now);
      keepKeyFreshSending(dev, peer, now);
    }
    runLen = 0;
    runPeer = null;
    runKp = null;
  };
  for (let i = 0; i < count; i++) {
    const off = offsets[i];
    const len = lengths[i];
    const v = ipVersion(buf, off, len);
    if (v === 0) {
      endRun();
      dev.insideDrops.add('not-ip');
      continue;
    }
    const dst = off + (v === 4 ? IPV4_DST_OFF : IPV6_DST_OFF);
    let peer: Peer | null;
    if (v === lastV && lastDst >= 0 && sameBytes(buf, dst, lastDst, v === 4 ? 4 : 16)) peer = lastPeer;
    else {
      peer = dev.allowedIps.lookup(v, buf, dst);
      lastV = v;
      lastDst = dst;
      lastPeer = peer;
    }
    if (!peer) {
      endRun();
      dev.insideDrops.add('no-route');
      continue;
    }
    if (isTooBig(peer, len, v)) {
      endRun();
      tooBig(dev, peer, buf, off, len);
      continue;
    }
    if (peer === runPeer && runKp!.sendCounter + runLen < REJECT_AFTER_MESSAGES) {
      runLen++;
      continue;
    }
    endRun();
    const kp = peer.staged.length === 0 ? usableKeypair(dev, peer, now) : null;
    if (kp) {
      runPeer = peer;
      runKp = kp;
      runStart = i;
      runLen = 1;
      continue;
    }
    insidePacket(dev, buf.subarray(off, off + len));
  }
  endRun();
}

/** The current keypair if it may still send: not past REJECT_AFTER_TIME nor REJECT_AFTER_MESSAGES. */
export function usableKeypair(dev: Device, peer: Peer, now = dev.clock.now()): Keypair | null {
  const kp = peer.keypairs.current;
  if (!kp) return null;
  if (kp.sendCounter >= REJECT_AFTER_MESSAGES) return null;
  if (now - kp.createdMs >= dev.timers.rejectAfterTimeMs) return null;
  return kp;
}

function stage(dev: Device, peer: Peer, packet: Uint8Array): void {
  if (peer.staged.length === 0) dev.noteWake(peer); // it wants a path: discovery looks at it now
  if (peer.staged.length >= MAX_STAGED_PACKETS) {
    peer.staged.shift();
    dev.insideDrops.add('staged-overflow');
  }
  peer.staged.push(packet);
}

/** Sends what is staged if a session allows it; otherwise asks for a handshake. */
export function sendStaged(dev: Device, peer: Peer): void {
  const now = dev.clock.now();
  const kp = usableKeypair(dev, peer, now);
  if (!kp) {
    sendHandshakeInitiation(dev, peer, false);
    return;
  }
  const staged = peer.staged;
  peer.staged = objectArray();
  for (const p of staged) sealAndQueue(dev, peer, kp, p, false, now);
  keepKeyFreshSending(dev, peer, now);
}

/** A keepalive is an empty transport message; it goes through the staging queue like data. */
export function sendKeepalive(dev: Device, peer: Peer): void {
  if (peer.staged.length === 0) {
    dev.noteWake(peer);
    peer.staged.push(EMPTY);
  }
  sendStaged(dev, peer);
}

function paddedLength(len: number, mtu: number): number {
  if (len === 0) return 0;
  let last = len;
  if (mtu > 0 && last > mtu) last %= mtu;
  const padded = Math.min((last + 15) & ~15, mtu > 0 ? Math.max(mtu, last) : Infinity);
  return len - last + padded;
}

/**
 * Pads, seals and queues one packet. `inPlace`: the message is built around the payload in its own
 * buffer (header room before, padding and tag room after; see DeviceOptions.inPlace), else copied.
 */
function sealAndQueue(dev: Device, peer: Peer, kp: Keypair, payload: Uint8Array, inPlace: boolean, now: number): void {
  const padded = paddedLength(payload.length, peer.mtu || dev.mtu);
  const size = TRANSPORT_HEADER_SIZE + padded + AEAD_TAG_LEN;
  let msg: Uint8Array;
  if (inPlace) {
    msg = new Uint8Array(payload.buffer, payload.byteOffset - TRANSPORT_HEADER_SIZE, size);
    msg.fill(0, TRANSPORT_HEADER_SIZE + payload.length, TRANSPORT_HEADER_SIZE + padded);
  } else {
    msg = new Uint8Array(size);
    msg.set(payload, TRANSPORT_HEADER_SIZE);
  }
  writeHeader(msg, MSG_TRANSPORT);
  writeU32(msg, OFF_DATA_RECEIVER, kp.remoteIndex);
  const counter = kp.sendCounter++;
  writeCounter(msg, OFF_DATA_COUNTER, counter);
  dev.aead.seal(kp.sendKey, counter, msg, TRANSPORT_HEADER_SIZE, padded, msg, TRANSPORT_HEADER_SIZE);
  dev.out.net.push({ to: peer.endpoint, data: msg, peerId: peer.id });
  peer.txBytes += msg.length;
  if (payload.length > 0) onDataSent(dev, peer, now);
  onAnyAuthenticatedPacketSent(peer);
  onAnyAuthenticatedPacketTraversal(dev, peer, now);
}

function keepKeyFreshSending(dev: Device, peer: Peer, now: number): void {
  const kp = peer.keypairs.current;
  if (!kp || !kp.isInitiator) return;
  if (kp.sendCounter > REKEY_AFTER_MESSAGES || now - kp.createdMs > dev.timers.rekeyAfterTimeMs) {
    sendHandshakeInitiation(dev, peer, false);
  }
}

/** Starts (or retries) a handshake, at most once per REKEY_TIMEOUT. */
export function sendHandshakeInitiation(dev: Device, peer: Peer, isRetry: boolean): void {
  if (!dev.hasKey) return;
  const now = dev.clock.now();
  if (!isRetry) peer.timers.handshakeAttempts = 0;
  if (now - peer.timers.lastSentHandshakeMs < dev.timers.rekeyTimeoutMs) return;
  peer.timers.lastSentHandshakeMs = now;
  dev.unindexHandshake(peer);
  const idx = dev.allocateIndex({ peer, keypair: null });
  const msg = createInitiation(dev.identity, peer.handshake, idx, dev.clock.wall(), dev.rng);
  if (!msg) {
    dev.index.delete(idx);
    return;
  }
  peer.cookies.addMacs(msg, now);
  dev.out.net.push({ to: peer.endpoint, data: msg, peerId: peer.id });
  peer.txBytes += msg.length;
  dev.out.events.push({ type: 'handshake-initiated', peerId: peer.id, attempt: peer.timers.handshakeAttempts + 1 });
  onAnyAuthenticatedPacketTraversal(dev, peer, now);
  onAnyAuthenticatedPacketSent(peer);
  onHandshakeInitiated(dev, peer, now);
}
