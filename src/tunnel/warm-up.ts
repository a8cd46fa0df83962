// Runs the data path's JavaScript at start, between two throwaway devices in memory, so that V8 has
// optimised it before the first real packet. Sparse traffic (a ping every 10 ms) otherwise ran a
// packet's path in baseline code for hundreds of packets (docs/performance.md). Sans-IO: nothing
// leaves the process, and the real device's peers, sessions and counters are not touched.
import { generatePrivateKey } from '../crypto/keys.js';
import { parseCidr } from './cidr.js';
import { Device } from './device.js';
import type { Endpoint } from './endpoint.js';
import type { Peer } from './peer.js';
import { TRANSPORT_HEADER_SIZE } from '../wire/wireguard.js';

/** Round trips of one packet each way, then of a full batch each way (see step). */
export const WARM_UP_SINGLE_ROUNDS = 2000;
export const WARM_UP_BATCH_ROUNDS = 64;
const BATCH = 32;
/** Round trips per step: a few milliseconds at most (the first, in the interpreter), so a real packet never waits long. */
const ROUNDS_PER_STEP = 10;
/** Where a datagram lies in a receive buffer (the UDP reader's slots are this far apart, or more). */
const RX_SLOT = 2048;

/** When the second pair and handshake replace the first (see pair). */
export const REHANDSHAKE_AT = 200;
/** Every this many single rounds one goes over IPv6 (a real TUN carries some: ND, MLD, v6 traffic). */
export const V6_EVERY = 8;

// The two throwaway hosts: documentation addresses, never sent to.
const A_INNER = [10, 255, 0, 1];
const B_INNER = [10, 255, 0, 2];
const A_INNER6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B_INNER6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/** Where a TUN's own IPv6 chatter goes (all routers: router solicitations); no peer has it. */
const ALL_ROUTERS6 = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
// Endpoints in the shapes the daemon's own have, so V8's feedback is for the real objects: a peer's
// configured endpoint as daemon/resolve.ts makes it (address and port), and a datagram's source as
// the UDP reader makes it (address, port and the local address it arrived on). The first datagram
// roams each peer from the one to the other, as the first real one does.
// Their addresses are made at run time, as parsed and received ones are: V8 compares literals (interned
// strings) by pointer and deoptimised that at the first real address.
const ip = (last: number): string => [192, 0, 2, last].join('.');
const CONF_A: Endpoint = { address: ip(1), port: 51820 };
const CONF_B: Endpoint = { address: ip(2), port: 51820 };
const EP_A: Endpoint = { address: ip(1), port: 51820, local: ip(2) };
const EP_B: Endpoint = { address: ip(2), port: 51820, local: ip(1) };

/** One side of the warm-up: a device, its view of the other, and its TUN and receive buffers. */
interface Side {
  dev: Device;
  peer: Peer;
  /** Where datagrams to this side come from (the other side's endpoint). */
  from: Endpoint;
  tunBuf: Uint8Array;
  tunOffsets: Int32Array;
  tunLengths: Int32Array;
  rxBuf: Uint8Array;
  rxOffsets: Int32Array;
  rxLengths: Int32Array;
  rxFrom: Endpoint[];
}

/**
 * Two devices made as `like` is (its clock, randomness, AEAD, MTU, in-place mode and path MTU
 * default: the same objects and shapes, so what V8 learns holds for the real device), a session
 * between them, and packets laid out as the TUN and UDP readers lay them out. `step()` runs a few
 * round trips and says whether any remain.
 */
export class DataPathWarmUp {
  private readonly like: Device;
  private a!: Side;
  private b!: Side;
  private round = 0;
  /** Packets that reached the other side's TUN, intact: tests check the warm-up did the real thing. */
  delivered = 0;
  /** Of those, the IPv6 ones. */
  delivered6 = 0;
  /** Handshakes completed (two: see pair). */
  handshakes = 0;

  constructor(like: Device) {
    this.like = like;
    this.pair();
  }

  /**
   * A new pair of devices and a handshake between them. Done twice: V8 gives a function its
   * feedback vector (where it records what each property load, call and comparison met) only
   * after a few hundred bytes of its bytecode have run, so the first handshake, at the very
   * start, teaches V8 nothing, and the optimised code of the batch functions then met the first
   * real handshake's branches as new (deoptimised, for hundreds of packets). The second, once the
   * vectors exist (REHANDSHAKE_AT), is what V8 learns the handshake paths from.
   */
  private pair(): void {
    const like = this.like;
    const make = (from: Endpoint): Side => {
      const dev = new Device({
        privateKey: generatePrivateKey(like.rng),
        clock: like.clock,
        rng: like.rng,
        aead: like.aead,
        mtu: like.mtu,
        inPlace: like.inPlace,
      });
      dev.pathMtuDefault = like.pathMtuDefault;
      const tunBuf = new Uint8Array(BATCH * RX_SLOT);
      const tunOffsets = new Int32Array(BATCH);
      const tunLengths = new Int32Array(BATCH);
      const rxOffsets = new Int32Array(BATCH);
      for (let i = 0; i < BATCH; i++) rxOffsets[i] = i * RX_SLOT;
      return { dev, peer: null as unknown as Peer, from, tunBuf, tunOffsets, tunLengths, rxBuf: new Uint8Array(BATCH * RX_SLOT), rxOffsets, rxLengths: new Int32Array(BATCH), rxFrom: [] };
    };
    this.a = make(EP_B);
    this.b = make(EP_A);
    this.a.peer = this.a.dev.addPeer({ publicKey: this.b.dev.publicKey, endpoint: CONF_B }, [parseCidr(`${B_INNER.join('.')}/32`)!, parseCidr('fd00::2/128')!]);
    this.b.peer = this.b.dev.addPeer({ publicKey: this.a.dev.publicKey, endpoint: CONF_A }, [parseCidr(`${A_INNER.join('.')}/32`)!, parseCidr('fd00::1/128')!]);
    this.a.dev.start();
    this.b.dev.start();
    this.handshake();
    if (this.ready) this.handshakes++;
  }

  /** Whether the two devices have a session both ways (a failed handshake leaves nothing to warm). */
  get ready(): boolean {
    return this.a.peer.keypairs.current !== null && this.b.peer.keypairs.current !== null;
  }

  /** Runs up to ROUNDS_PER_STEP round trips; false once the warm-up is done. */
  step(): boolean {
    const total = WARM_UP_SINGLE_ROUNDS + WARM_UP_BATCH_ROUNDS;
    if (!this.ready) return false;
    for (let k = 0; k < ROUNDS_PER_STEP && this.round < total; k++, this.round++) {
      if (this.round === REHANDSHAKE_AT) {
        this.pair();
        if (!this.ready) return false;
      }
      const n = this.round < WARM_UP_SINGLE_ROUNDS ? 1 : BATCH;
      // An echo-request-sized packet for single rounds, a full-sized one in batches (bulk data);
      // every V6_EVERY-th single round and every other batch over IPv6.
      const v6 = n === 1 ? this.round % V6_EVERY === V6_EVERY - 1 : this.round % 2 === 1;
      const size = n === 1 ? (v6 ? 104 : 84) : Math.min(this.a.peer.mtu || this.a.dev.mtu, this.b.peer.mtu || this.b.dev.mtu);
      this.send(this.a, this.b, v6 ? A_INNER6 : A_INNER, v6 ? B_INNER6 : B_INNER, n, size);
      this.send(this.b, this.a, v6 ? B_INNER6 : B_INNER, v6 ? A_INNER6 : A_INNER, n, size);
      // And now and then what a TUN sends that has no peer: dropped (no-route) on the throwaway device.
      if (this.round % 64 === 0) this.a.dev.insideBatch(this.a.tunBuf, this.a.tunOffsets, this.fill(this.a, A_INNER6, ALL_ROUTERS6, 1, 56), 1);
    }
    return this.round < total;
  }

  /** The handshake, started by a first packet that waits for it in A's TUN batch, as a real one does. */
  private handshake(): void {
    this.a.dev.insideBatch(this.a.tunBuf, this.a.tunOffsets, this.fill(this.a, A_INNER, B_INNER, 1, 84), 1);
    for (let i = 0; i < 4; i++) {
      this.deliver(this.a, this.b);
      this.deliver(this.b, this.a);
    }
    this.a.dev.out.clear();
    this.b.dev.out.clear();
  }

  /**
   * Hands the one-by-one datagrams `from` queued (handshake messages) to `to` as the daemon does:
   * in its receive batch, through outsideBatch.
   */
  private deliver(from: Side, to: Side): void {
    const net = from.dev.out.net;
    let m = 0;
    for (let i = 0; i < net.length && m < BATCH; i++, m++) this.receive(to, m, net[i].data);
    from.dev.out.clear();
    to.rxFrom.length = m;
    if (m > 0) to.dev.outsideBatch(to.rxBuf, to.rxOffsets, to.rxLengths, to.rxFrom, m);
  }

  /** Datagram `data` into slot `m` of `to`'s receive batch, as the UDP reader lays it out. */
  private receive(to: Side, m: number, data: Uint8Array): void {
    to.rxBuf.set(data, to.rxOffsets[m]);
    to.rxLengths[m] = data.length;
    to.rxFrom[m] = to.from;
  }

  /** `n` packets from `src` to `dst` through `from`'s TUN batch, the wire, and `to`'s receive batch. */
  private send(from: Side, to: Side, srcIp: number[], dstIp: number[], n: number, size: number): void {
    from.dev.insideBatch(from.tunBuf, from.tunOffsets, this.fill(from, srcIp, dstIp, n, size), n);
    // "Send": every sealed message into the receiver's slots, as the UDP reader lays them out.
    let m = 0;
    const out = from.dev.out;
    for (let r = 0; r < out.runs.length; r++) {
      const run = out.runs[r];
      for (let i = run.start; i < run.start + run.count && m < BATCH; i++, m++) this.receive(to, m, run.buf.subarray(run.offsets[i], run.offsets[i] + run.lengths[i]));
    }
    for (let i = 0; i < out.net.length && m < BATCH; i++, m++) this.receive(to, m, out.net[i].data);
    out.clear();
    to.rxFrom.length = m;
    to.dev.outsideBatch(to.rxBuf, to.rxOffsets, to.rxLengths, to.rxFrom, m);
    const tun = to.dev.out.tun;
    const dstLast = dstIp.length === 4 ? 19 : 39;
    for (let i = 0; i < tun.length; i++) {
      if (tun[i].length !== size || tun[i][dstLast] !== dstIp[dstIp.length - 1]) continue;
      this.delivered++;
      if (dstIp.length === 16) this.delivered6++;
    }
    to.dev.out.clear();
  }

  /** Lays `n` packets from `src` to `dst` out in `side`'s TUN batch, as the TUN reader does; their lengths. */
  private fill(side: Side, src: number[], dst: number[], n: number, size: number): Int32Array {
    const { tunBuf, tunOffsets, tunLengths } = side;
    for (let i = 0; i < n; i++) {
      const at = i * RX_SLOT + TRANSPORT_HEADER_SIZE;
      tunOffsets[i] = at;
      tunLengths[i] = size;
      tunBuf.set(ipPacket(size, src, dst, this.round), at);
    }
    return tunLengths;
  }
}

/** An IPv4 or IPv6 packet (by the address length) of `size` bytes, UDP inside, from `src` to `dst`; `tag` varies the payload. */
function ipPacket(size: number, src: number[], dst: number[], tag: number): Uint8Array {
  const p = new Uint8Array(size);
  let head: number;
  if (src.length === 4) {
    head = 20;
    p[0] = 0x45;
    p[2] = size >> 8;
    p[3] = size & 0xff;
    p[8] = 64;
    p[9] = 17;
    p.set(src, 12);
    p.set(dst, 16);
  } else {
    head = 40;
    p[0] = 0x60;
    p[4] = (size - 40) >> 8;
    p[5] = (size - 40) & 0xff;
    p[6] = 17;
    p[7] = 64;
    p.set(src, 8);
    p.set(dst, 24);
  }
  for (let i = head; i < size; i += 64) p[i] = tag & 0xff;
  return p;
}
