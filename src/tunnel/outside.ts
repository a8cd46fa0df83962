// Outside → inside: a WireGuard datagram from the network.
//  1. Check type and size; handshake messages must carry a valid mac1 (and mac2 under load).
//  2. Initiation → response and a responder session; response → initiator session; cookie reply → cookie.
//  3. Transport: find the session by receiver index, open, replay-check, confirm `next`,
//     roam to the source address, check the inner source against AllowedIPs, write to the TUN.
import { keyId } from '../crypto/keys.js';
import { sameBytes } from '../wire/bytes.js';
import { AEAD_TAG_LEN } from '../crypto/aead.js';
import { REJECT_AFTER_MESSAGES } from '../noise/constants.js';
import { consumeInitiation, consumeResponse, createResponse, deriveKeys, restorePendingInitiation, savePendingInitiation, type PendingInitiation } from '../noise/handshake.js';
import { Keypair } from '../noise/keypair.js';
import { rateLimitKey } from '../noise/rate-limiter.js';
import { IPV4_HEADER_MIN, IPV4_SRC_OFF, IPV6_SRC_OFF, ipTotalLength, ipVersion } from '../wire/ip.js';
import {
  MSG_COOKIE_REPLY,
  MSG_INITIATION,
  MSG_RESPONSE,
  MSG_TRANSPORT,
  OFF_COOKIE_RECEIVER,
  OFF_DATA_COUNTER,
  OFF_DATA_RECEIVER,
  OFF_SENDER,
  TRANSPORT_HEADER_SIZE,
  TRANSPORT_MIN_SIZE,
  readCounter,
  readU32,
  wireguardSizeOk,
  wireguardType,
} from '../wire/wireguard.js';
import type { Device } from './device.js';
import { endpointBytes, endpointEqual, type Endpoint } from './endpoint.js';
import type { Peer } from './peer.js';
import { sendKeepalive, sendHandshakeInitiation, sendStaged } from './inside.js';
import {
  onAnyAuthenticatedPacketReceived,
  onAnyAuthenticatedPacketSent,
  onAnyAuthenticatedPacketTraversal,
  onDataReceived,
  onHandshakeComplete,
  onSessionDerived,
} from './timer-hooks.js';

export function outsideDatagram(dev: Device, msg: Uint8Array, from: Endpoint): void {
  const type = wireguardType(msg);
  if (type === 0) {
    dev.outsideDrops.add('not-wireguard');
    return;
  }
  if (!wireguardSizeOk(type, msg.length)) {
    dev.outsideDrops.add('bad-size');
    return;
  }
  switch (type) {
    case MSG_INITIATION:
    case MSG_RESPONSE:
      if (admitHandshake(dev, msg, from)) {
        if (type === MSG_INITIATION) receiveInitiation(dev, msg, from);
        else receiveResponse(dev, msg, from);
      }
      return;
    case MSG_COOKIE_REPLY:
      receiveCookieReply(dev, msg);
      return;
    case MSG_TRANSPORT:
      receiveTransport(dev, msg, from);
      return;
  }
}

/**
 * mac1 always; under load, first the per-source rate limit (a flooding source costs one map lookup,
 * and gets at most 20 cookie replies a second), then mac2, answering with a cookie when it is missing.
 * (wireguard-go rate-limits after mac2; doing it first is what keeps a single-threaded responder
 * answering legitimate peers during a flood — docs/architecture.md.)
 */
function admitHandshake(dev: Device, msg: Uint8Array, from: Endpoint): boolean {
  const now = dev.clock.now();
  const underLoad = dev.noteHandshakeAndCheckLoad(now);
  if (underLoad && !dev.rateLimiter.allow(from.relay ? `relay:${Buffer.from(from.relay.key).toString('hex')}` : rateLimitKey(from.address), now)) {
    dev.outsideDrops.add('rate-limited');
    return false;
  }
  if (!dev.cookieChecker.checkMac1(msg)) {
    dev.outsideDrops.add('bad-mac1');
    return false;
  }
  if (!underLoad) return true;
  const source = endpointBytes(from);
  if (!dev.cookieChecker.checkMac2(msg, source, now)) {
    const reply = dev.cookieChecker.createReply(msg, readU32(msg, OFF_SENDER), source, now, dev.rng);
    dev.out.net.push({ to: from, data: reply, peerId: '' });
    dev.outsideDrops.add('cookie-sent');
    return false;
  }
  return true;
}

/** After authentication: note which path the packet took; a UDP source becomes the endpoint (roaming). */
function roam(dev: Device, peer: Peer, from: Endpoint, now = dev.clock.now()): void {
  if (from.relay) {
    peer.lastRelayRxMs = now;
    return;
  }
  peer.lastDirectRxMs = now;
  if (endpointEqual(peer.endpoint, from)) {
    if (peer.endpoint!.local !== from.local) peer.endpoint = from; // same peer address, reached on another of ours
    return;
  }
  peer.endpoint = from;
  dev.out.events.push({ type: 'endpoint-changed', peerId: peer.id, endpoint: from });
}

function installSession(dev: Device, peer: Peer, kp: Keypair): void {
  for (const old of peer.keypairs.install(kp)) dev.unindexKeypair(old);
  dev.index.set(kp.localIndex, { peer, keypair: kp });
  onSessionDerived(dev, peer, dev.clock.now());
}

function receiveInitiation(dev: Device, msg: Uint8Array, from: Endpoint): void {
  const now = dev.clock.now();
  let pending = null as PendingInitiation | null;
  const r = consumeInitiation<Peer>(
    dev.identity,
    msg,
    (pub) => {
      const peer = dev.peers.get(keyId(pub));
      if (!peer) return undefined;
      pending = savePendingInitiation(peer.handshake); // crossing initiations: keep ours
      return { peer, hs: peer.handshake };
    },
    now,
  );
  if (!r.ok) {
    dev.outsideDrops.add(r.reason);
    return;
  }
  const peer = r.peer;
  dev.handshakeStats.initiationsReceived++;
  peer.rxBytes += msg.length;
  onAnyAuthenticatedPacketTraversal(dev, peer, now);
  onAnyAuthenticatedPacketReceived(peer);
  roam(dev, peer, from);

  // Our own initiation (if any) keeps its index: its response may still arrive and complete it.
  if (!pending) dev.unindexHandshake(peer);
  const idx = dev.allocateIndex({ peer, keypair: null });
  const resp = createResponse(r.hs, idx, dev.rng);
  const keys = resp ? deriveKeys(r.hs) : null;
  if (pending) restorePendingInitiation(peer.handshake, pending);
  if (!resp || !keys) {
    dev.index.delete(idx);
    dev.outsideDrops.add('handshake-decrypt');
    return;
  }
  peer.cookies.addMacs(resp, now);
  installSession(dev, peer, new Keypair(keys, now));
  dev.out.net.push({ to: peer.endpoint, data: resp, peerId: peer.id });
  peer.txBytes += resp.length;
  onAnyAuthenticatedPacketTraversal(dev, peer, now);
  onAnyAuthenticatedPacketSent(peer);
}

function receiveResponse(dev: Device, msg: Uint8Array, from: Endpoint): void {
  const now = dev.clock.now();
  const r = consumeResponse<Peer>(dev.identity, msg, (idx) => {
    const e = dev.index.get(idx);
    return e && e.keypair === null ? { peer: e.peer, hs: e.peer.handshake } : undefined;
  });
  if (!r.ok) {
    dev.outsideDrops.add(r.reason);
    return;
  }
  const peer = r.peer;
  const keys = deriveKeys(r.hs);
  if (!keys) {
    dev.outsideDrops.add('handshake-decrypt');
    return;
  }
  dev.handshakeStats.responsesReceived++;
  peer.rxBytes += msg.length;
  roam(dev, peer, from);
  onAnyAuthenticatedPacketTraversal(dev, peer, now);
  onAnyAuthenticatedPacketReceived(peer);
  installSession(dev, peer, new Keypair(keys, now));
  onHandshakeComplete(dev, peer);
  dev.out.events.push({ type: 'handshake-complete', peerId: peer.id, initiator: true });
  sendKeepalive(dev, peer);
}

function receiveCookieReply(dev: Device, msg: Uint8Array): void {
  const e = dev.index.get(readU32(msg, OFF_COOKIE_RECEIVER));
  if (!e) {
    dev.outsideDrops.add('unknown-receiver');
    return;
  }
  if (!e.peer.cookies.consumeReply(msg, dev.clock.now())) dev.outsideDrops.add('bad-cookie-reply');
}

function receiveTransport(dev: Device, msg: Uint8Array, from: Endpoint): void {
  const e = dev.index.get(readU32(msg, OFF_DATA_RECEIVER));
  if (!e || !e.keypair) {
    dev.outsideDrops.add('unknown-receiver');
    return;
  }
  const { peer, keypair: kp } = e;
  const counter = readCounter(msg, OFF_DATA_COUNTER);
  if (counter < 0) {
    dev.outsideDrops.add('counter-too-large');
    return;
  }
  const now = dev.clock.now();
  if (now - kp.createdMs >= dev.timers.rejectAfterTimeMs || counter >= REJECT_AFTER_MESSAGES) {
    dev.outsideDrops.add('expired-keypair');
    return;
  }
  const ctLen = msg.length - TRANSPORT_HEADER_SIZE;
  // In place (the daemon's own receive buffer), else into a fresh buffer the Outbox may keep.
  const plain = dev.inPlace ? msg.subarray(TRANSPORT_HEADER_SIZE) : new Uint8Array(ctLen - AEAD_TAG_LEN);
  const n = dev.aead.open(kp.recvKey, counter, msg, TRANSPORT_HEADER_SIZE, ctLen, plain, 0);
  if (n < 0) {
    dev.outsideDrops.add('decrypt-failed');
    return;
  }
  if (!acceptOpened(dev, peer, kp, counter, msg.length, from, now)) return;
  if (n === 0) return; // keepalive
  const r = checkInner(dev, peer, plain, 0, n, -1);
  if (r > 0) {
    dev.out.tun.push(plain.subarray(0, r));
    onDataReceived(dev, peer, now);
  }
}

/**
 * A transport message that authenticated: the replay window, session confirmation, roaming, key
 * freshness and timers. False when it is a replay (dropped, counted).
 */
function acceptOpened(dev: Device, peer: Peer, kp: Keypair, counter: number, msgLen: number, from: Endpoint, now: number): boolean {
  if (!kp.replay.validate(counter, REJECT_AFTER_MESSAGES)) {
    dev.outsideDrops.add('replay');
    return false;
  }
  const { confirmed, dropped } = peer.keypairs.received(kp);
  if (dropped) dev.unindexKeypair(dropped);
  if (confirmed) {
    onHandshakeComplete(dev, peer);
    dev.out.events.push({ type: 'handshake-complete', peerId: peer.id, initiator: false });
    sendStaged(dev, peer);
  }
  roam(dev, peer, from, now);
  keepKeyFreshReceiving(dev, peer, now);
  peer.rxBytes += msgLen;
  onAnyAuthenticatedPacketTraversal(dev, peer, now);
  onAnyAuthenticatedPacketReceived(peer);
  return true;
}

/**
 * The decrypted packet b[off, off+n): a sane IP packet whose source the peer may use (AllowedIPs).
 * Returns its length by its own header, or 0 when dropped (counted). `knownSrc` >= 0: the offset of
 * a source address already checked for this peer (the previous packet's): equal bytes skip the lookup.
 */
function checkInner(dev: Device, peer: Peer, b: Uint8Array, off: number, n: number, knownSrc: number): number {
  const v = ipVersion(b, off, n);
  if (v === 0) {
    dev.outsideDrops.add('not-ip');
    return 0;
  }
  const total = ipTotalLength(b, off, n);
  if (total > n || total < (v === 4 ? IPV4_HEADER_MIN : 40)) {
    dev.outsideDrops.add('bad-ip-length');
    return 0;
  }
  const src = off + (v === 4 ? IPV4_SRC_OFF : IPV6_SRC_OFF);
  if (knownSrc >= 0 && (b[knownSrc] >> 4) === v && sameBytes(b, src, knownSrc + (v === 4 ? IPV4_SRC_OFF : IPV6_SRC_OFF), v === 4 ? 4 : 16)) return total;
  if (dev.allowedIps.lookup(v, b, src) !== peer) {
    dev.outsideDrops.add('source-not-allowed');
    return 0;
  }
  return total;
}

/**
 * A batch of datagrams in one buffer (datagram i at offsets[i], lengths[i] long, from from[i]):
 * the same as outsideDatagram for each, but consecutive transport messages for one session from one
 * source are opened with one call (TransportAead.openBatch), in place. Replay, roaming and every
 * other decision are made per message, in order, exactly as for one.
 */
export function outsideBatch(dev: Device, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, from: readonly Endpoint[], count: number, plain: Int32Array, counters: Float64Array): void {
  const open = dev.aead.openBatch;
  if (!dev.inPlace || !open) {
    for (let i = 0; i < count; i++) outsideDatagram(dev, buf.subarray(offsets[i], offsets[i] + lengths[i]), from[i]);
    return;
  }
  let runEntry: { peer: Peer; keypair: Keypair | null } | undefined;
  let runReceiver = -1;
  let runFrom: Endpoint | null = null;
  let runStart = 0;
  let runLen = 0;
  const endRun = (): void => {
    if (runLen === 0) return;
    const start = runStart;
    const n = runLen;
    runLen = 0;
    runReceiver = -1;
    const { peer, keypair } = runEntry!;
    const kp = keypair!;
    const now = dev.clock.now();
    if (now - kp.createdMs >= dev.timers.rejectAfterTimeMs) {
      for (let k = 0; k < n; k++) dev.outsideDrops.add('expired-keypair');
      return;
    }
    open.call(dev.aead, kp.recvKey, buf, offsets, lengths, start, n, plain, counters);
    let knownSrc = -1;
    for (let j = start; j < start + n; j++) {
      const counter = counters[j];
      if (counter < 0) {
        dev.outsideDrops.add('counter-too-large');
        continue;
      }
      if (counter >= REJECT_AFTER_MESSAGES) {
        dev.outsideDrops.add('expired-keypair');
        continue;
      }
      const len = plain[j];
      if (len < 0) {
        dev.outsideDrops.add('decrypt-failed');
        continue;
      }
      // The session may have been replaced by something earlier in this run (it never is by data).
      if (!acceptOpened(dev, peer, kp, counter, lengths[j], runFrom!, now)) continue;
      if (len === 0) continue; // keepalive
      const at = offsets[j] + TRANSPORT_HEADER_SIZE;
      const r = checkInner(dev, peer, buf, at, len, knownSrc);
      if (r > 0) {
        knownSrc = at;
        // A plain view: cheaper than subarray, which looks up the species constructor each time.
        dev.out.tun.push(new Uint8Array(buf.buffer, buf.byteOffset + at, r));
        onDataReceived(dev, peer, now);
      }
    }
  };
  for (let i = 0; i < count; i++) {
    const off = offsets[i];
    const len = lengths[i];
    const f = from[i];
    if (len >= TRANSPORT_MIN_SIZE && buf[off] === MSG_TRANSPORT && buf[off + 1] === 0 && buf[off + 2] === 0 && buf[off + 3] === 0) {
      const receiver = readU32(buf, off + OFF_DATA_RECEIVER);
      if (receiver === runReceiver && f === runFrom) {
        runLen++;
        continue;
      }
      endRun();
      const e = dev.index.get(receiver);
      if (!e || !e.keypair) {
        dev.outsideDrops.add('unknown-receiver');
        continue;
      }
      runEntry = e;
      runReceiver = receiver;
      runFrom = f;
      runStart = i;
      runLen = 1;
      continue;
    }
    endRun();
    outsideDatagram(dev, buf.subarray(off, off + len), f);
  }
  endRun();
}

/** The initiator rekeys before the responder would reject the session (whitepaper §6.2). */
function keepKeyFreshReceiving(dev: Device, peer: Peer, now: number): void {
  const kp = peer.keypairs.current;
  if (!kp || !kp.isInitiator || peer.timers.sentLastMinuteHandshake) return;
  const t = dev.timers;
  if (now - kp.createdMs > t.rejectAfterTimeMs - t.keepaliveTimeoutMs - t.rekeyTimeoutMs) {
    peer.timers.sentLastMinuteHandshake = true;
    sendHandshakeInitiation(dev, peer, false);
  }
}
