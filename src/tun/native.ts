// Typed loader for the N-API addon; a missing or broken build becomes one clear error.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MeshdError } from '../errors.js';
import { packageRoot } from '../package-root.js';

export interface TunOpenResult {
  fd: number;
  name: string;
  error: string;
  /** The kernel agreed to a virtio-net header with TSO/checksum offload on every packet. */
  offload: boolean;
  /** And to UDP segmentation offload too (Linux 6.2+). */
  uso: boolean;
}

export interface UdpOpenResult {
  /** The socket, or -errno. */
  fd: number;
  port: number;
  dualStack: boolean;
  /** UDP_GRO is on: one receive may carry several datagrams of one size. */
  gro: boolean;
  error: string;
  code: number;
}

export interface ReaderHandle {
  start(): number;
  stop(): void;
  /** One batch read now, not on the poll: its count (0: nothing queued; negative: -errno); the caller hands it over. */
  readNow(): number;
}

export interface NativeAddon {
  tunOpen(name: string, offload: boolean): TunOpenResult;
  /** Returns writes * 65536 + failed writes. `uso`: merge UDP datagrams of one flow too. */
  tunWriteBatch(fd: number, packets: readonly Uint8Array[], count: number, offload: boolean, uso?: boolean): number;
  closeFd(fd: number): number;
  /** A route netlink socket notified of link and address changes (native/src/netwatch.h): fd or -errno. */
  netwatchOpen(): number;
  /** Reads the queued notifications without blocking: how many (lost ones count as one), or -errno. */
  netwatchDrain(fd: number): number;
  udpOpen(port: number, bufferBytes: number, fwmark: number): UdpOpenResult;
  /** 0 or -errno. */
  udpSetMark(fd: number, fwmark: number): number;
  /** DF on every datagram, never fragmented locally (IP_PMTUDISC_PROBE): 0 or -errno. */
  udpSetPmtuProbe(fd: number, dualStack: boolean): number;
  /**
   * The data path's socket send with its arrays bound once (native/src/bound.h): a sender over the
   * socket's own buffer and send arrays (id, or -EINVAL), the buffer `which` 1 names (0 or -EINVAL),
   * a send of `count` datagrams, datagram i being bufs[which[i]][offsets[i], +lengths[i]) to
   * addrs[34 * i...] (flags: 1 dual-stack, 2 GSO; result: refused, GSO refused, source refused), and its release at close.
   */
  udpSenderCreate(fd: number, buf: Uint8Array, which: Uint8Array, offsets: Int32Array, lengths: Int32Array, addrs: Uint8Array, result: Int32Array): number;
  udpSenderExternal(id: number, buf: Uint8Array | null): number;
  udpSenderSend(id: number, count: number, flags: number): number;
  udpSenderClose(id: number): void;
  aeadSeal(key: Uint8Array, counterLo: number, counterHi: number, buf: Uint8Array, offset: number, length: number): number;
  aeadOpen(key: Uint8Array, counterLo: number, counterHi: number, src: Uint8Array, srcOffset: number, length: number, dst: Uint8Array, dstOffset: number): number;
  /**
   * A box with associated data: ChaCha20-Poly1305 with WireGuard's nonce (8 bytes: a little-endian
   * counter) or XChaCha20-Poly1305 (24 bytes). dst gets ciphertext and tag: src.length + 16, or -1.
   */
  aeadSealAd(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, src: Uint8Array, dst: Uint8Array): number;
  /** Opens such a box into dst: the plaintext length, or -1 (tag or lengths wrong; discard dst). */
  aeadOpenAd(key: Uint8Array, nonce: Uint8Array, ad: Uint8Array, src: Uint8Array, dst: Uint8Array): number;
  sealBatch(key: Uint8Array, receiver: number, counterLo: number, counterHi: number, mtu: number, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, start: number, count: number): number;
  openBatch(key: Uint8Array, buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, start: number, count: number, plain: Int32Array, counters: Float64Array): number;
  /**
   * sealBatch and openBatch with their arrays bound once (native/src/bound.h): seal params are
   * [receiver, counterLo, counterHi, mtu, start, count], open params [start, count]. Bind calls
   * return 0 or -EINVAL; sealBound returns sealBatch's result, openBound the count or -1.
   */
  aeadBindSeal(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, params: Float64Array): number;
  sealBound(key: Uint8Array): number;
  aeadBindOpen(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, plain: Int32Array, counters: Float64Array, params: Float64Array): number;
  openBound(key: Uint8Array): number;
  /** BLAKE2s into out (16 or 32 bytes), keyed when key is given; up to three parts, concatenated. */
  blake2s(out: Uint8Array, key: Uint8Array | null, a: Uint8Array, b?: Uint8Array, c?: Uint8Array): boolean;
  hmacBlake2s(out: Uint8Array, key: Uint8Array, a: Uint8Array, b?: Uint8Array, c?: Uint8Array): boolean;
  /** KDF_n(key, input) into out (n * 32 bytes: T1, T2, T3). */
  kdf(n: number, key: Uint8Array, input: Uint8Array, out: Uint8Array): boolean;
  /** 1: ok; 0: all-zero result (low-order point); -1: unavailable. */
  x25519(out: Uint8Array, priv: Uint8Array, pub: Uint8Array): number;
  x25519Public(out: Uint8Array, priv: Uint8Array): boolean;
  x25519Available(): boolean;
  /** "direct" (OpenSSL's ChaCha20/Poly1305 cores), "evp" or "none". */
  aeadBackend(): string;
  /** Threads a batch's AEAD runs on, the caller included (1–8; 1 with the EVP backend): the number in effect. */
  setAeadThreads(n: number): number;
  /**
   * A full GC that compacts the heap and returns its free pages (V8's memory-pressure GC): with now,
   * at once; else as incremental marking over the next event-loop turns.
   */
  reduceHeap(now: boolean): void;
  TunReader: new (
    fd: number,
    buffer: Uint8Array,
    headroom: number,
    tailroom: number,
    offsets: Int32Array,
    lengths: Int32Array,
    stats: Int32Array,
    offload: boolean,
    onPackets: (count: number) => void,
  ) => ReaderHandle;
  UdpReader: new (
    fd: number,
    buffer: Uint8Array,
    slotSize: number,
    lengths: Int32Array,
    gso: Int32Array,
    addrs: Uint8Array,
    onPackets: (count: number) => void,
  ) => ReaderHandle;
}

let cached: NativeAddon | null = null;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = join(packageRoot(), 'native', 'build', 'Release', 'meshd_native.node');
  if (!existsSync(path)) {
    throw new MeshdError('ENATIVE', `native addon not built (${path} missing): run "npm run build"`);
  }
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new MeshdError('ENATIVE', `native addon failed to load from ${path}: ${(err as Error).message}`);
  }
  return cached;
}
