// The composition root: wires config, TUN, UDP, the sans-IO device, UAPI and control sockets,
// owns the tick and the lifecycle. Everything it creates is undone on stop, in reverse order.
import type net from 'node:net';
import { readFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import type { MeshConfig } from '../config/config.js';
import { keyToBase64 } from '../crypto/keys.js';
import { selectTransportAead } from '../crypto/transport-aead.js';
import { pooledRandom } from '../crypto/random.js';
import { MAX_AEAD_THREADS, nativeAead } from '../crypto/native-aead.js';
import type { TimerConfig } from '../noise/constants.js';
import { formatCidr, formatIpAddr } from '../tunnel/cidr.js';
import { DataPathWarmUp } from '../tunnel/warm-up.js';
import { clearArray } from '../tunnel/clear-array.js';
import { Device, type Clock } from '../tunnel/device.js';
import { formatEndpoint, relayEndpoint, type Endpoint } from '../tunnel/endpoint.js';
import type { Peer } from '../tunnel/peer.js';
import { portsInOrder } from '../transport/endpoints.js';
import { openDgramSocket, type FreshSocket } from '../transport/mapping-check.js';
import { Relays } from '../transport/relays.js';
import type { RelayClient } from '../transport/relay-client.js';
import { choosePath, goesToUntrusted, isDirectConfirmed, type PathChoice } from '../transport/path.js';
import { Discovery, type DiscoEvent } from '../transport/discovery.js';
import { BirthdaySockets } from '../transport/birthday-sockets.js';
import { DEFAULT_BIRTHDAY_LIMITS } from '../transport/birthday.js';
import { PMTU_SAFE } from '../transport/path-mtu.js';
import { tunMtuFor, underlayMtu } from './underlay-mtu.js';
import { NetworkWatch } from '../transport/network-watch.js';
import { StunService } from '../transport/stun-service.js';
import { pingRound, type PongReply } from './ping.js';
import { keyId } from '../crypto/keys.js';
import type { DatagramRun, DeviceEvent } from '../tunnel/outbox.js';
import type { Server as HttpServer } from 'node:http';
import { LinuxTun, type TunDevice } from '../tun/tun-device.js';
import { addAddress, setMtu, setMtuAndUp } from '../tun/netconfig.js';
import { UdpConn, type PacketConn, type PacketHandlers } from '../transport/udp.js';
import { NativeUdpConn, SMALL_SIZES } from '../transport/native-udp.js';
import { classify } from '../wire/classify.js';
import { applySet, formatGet } from '../uapi/uapi.js';
import { startUapiServer, uapiSocketPath } from '../uapi/server.js';
import { closeUnix, socketInUse } from '../control/unix-socket.js';
import { controlSocketPath, startControlServer } from '../control/control.js';
import { ConfigError, MeshdError } from '../errors.js';
import { runHooks } from './hooks.js';
import { setDns, unsetDns } from './dns.js';
import { planReload, summarize } from './reload.js';
import { InviteRedeemer } from './invites.js';
import { ownHeapTrim, quickerTierUp } from './v8-tuning.js';
import { HeapTrimmer } from './heap-trim.js';
import { loadNative } from '../tun/native.js';
import { getHeapStatistics } from 'node:v8';
import { loadConfig, parseHostPort, relayHost, type PeerConfig } from '../config/config.js';
import { resolveEndpoint } from './resolve.js';
import { RouteTable } from './routes.js';
import { buildStatus, type DaemonStatus, type PathMtuStatus, type PathStatus } from './status.js';
import { Membership } from './membership.js';
import { NameServer } from './name-server.js';
import { SplitDns } from './split-dns.js';
import { staticZone, type NameZone } from '../mesh/names.js';
import { PolicyFirewall } from './firewall.js';
import { compilePolicy, hostRules, policyTableName } from '../mesh/policy.js';
import type { Roster, RosterMember } from '../mesh/roster.js';
import { rosterFile } from '../config/config.js';

/**
 * How often timers are checked. WireGuard's timers tolerate this much lateness (retries already
 * carry up to 334 ms of jitter; boringtun ticks every 250 ms), and an idle daemon with 1,000 peers
 * should cost next to nothing.
 */
export const TICK_INTERVAL_MS = 250;
/** The tick when nothing is due within it (see scheduleTick). */
export const IDLE_TICK_INTERVAL_MS = 1000;
export const DEFAULT_STUN_PORT = 3478;

export interface DaemonOptions {
  config: MeshConfig;
  log: Logger;
  /** Transport AEAD backend name ("native", "node-crypto" or "noble"); default: the fastest available. */
  aead?: string;
  /**
   * The batched data path: addon UDP socket (recvmmsg/sendmmsg, GSO/GRO), TUN offloads (TSO/GRO)
   * and sealing in place. Off: node:dgram, plain TUN packets, a copy per packet (the fallback, and
   * the reference the tests compare against). Default on unless MESHD_FASTPATH=off.
   */
  fastPath?: boolean;
  timers?: Partial<TimerConfig>;
  /**
   * meshd-wireguard: a plain WireGuard implementation driven over the UAPI, as wireguard-go is. The
   * interface starts with no key and no peers (the config is empty), is not brought up and gets no
   * addresses, routes or DNS (wg-quick does that), and disco, STUN and relays stay off.
   */
  wireguard?: boolean;
}

/** MESHD_AEAD_THREADS: how many threads seal and open a batch (default 1: the event loop alone). */
export function aeadThreadsFromEnv(v: string | undefined): number {
  if (v === undefined || v === '') return 1;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_AEAD_THREADS) throw new ConfigError(`MESHD_AEAD_THREADS=${v}: expected a whole number of threads from 1 to ${MAX_AEAD_THREADS}`);
  return n;
}

/** MESHD_FASTPATH=off (or 0/false/no) turns the batched data path off. */
export function fastPathFromEnv(v: string | undefined): boolean {
  return v === undefined || !['off', '0', 'false', 'no'].includes(v.toLowerCase());
}

const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
};

export type { PongReply };

export interface NetcheckReport {
  udp: boolean;
  stun: { server: string; mapped: string | null; rttMs: number | null; error: string | null }[];
  natMappingVariesByDestination: boolean | null;
  /** The mapping varies and the two mappings lie a few ports apart: the NAT hands out ports in order. */
  natPortsInOrder: boolean;
  relays: { url: string; state: string; latencyMs: number | null }[];
}

/**
 * The largest packet for the peer on the path chosen for it: the direct path's probed MTU when data
 * goes that way, the TUN's when only the relay (a TCP stream) carries it.
 */
function setPeerMtu(peer: Peer, path: PathChoice): void {
  peer.mtu = path.direct === null && path.relay ? 0 : peer.pathMtu;
}

export class Daemon {
  readonly device: Device;
  readonly iface: string;
  private tun: TunDevice | null = null;
  private udp: PacketConn | null = null;
  private relays: Relays | null = null;
  private readonly fastPath: boolean;
  private readonly udpHandlers: PacketHandlers = {
    onMessage: (msg, from) => this.onDatagram(msg, from),
    onMessages: (buf, offsets, lengths, from, count) => this.onDatagrams(buf, offsets, lengths, from, count),
    onBatchEnd: () => {
      this.flush();
      // What the kernel answered while we wrote the batch into the TUN (a ping's reply, TCP's
      // ACKs) is read and sent on now, not a round of the event loop later.
      if (this.tunWritten) {
        this.tunWritten = false;
        this.tun?.readNow?.();
      }
    },
  };
  /** The last flush wrote packets into the TUN (see udpHandlers.onBatchEnd). */
  private tunWritten = false;
  readonly discovery: Discovery;
  private readonly stun: StunService;
  /** Link and address change notifications, for followMtu and the STUN service's network check. */
  private readonly netWatch = new NetworkWatch();
  private handshakeInitiationsSent = 0;
  private metricsServer: HttpServer | null = null;
  private readonly handshakesCompleted = { initiator: 0, responder: 0 };
  /** Peers given up on after REKEY_ATTEMPT_TIME of unanswered initiations. */
  private handshakesFailed = 0;
  /** The source key of the relay packets being delivered, and their pseudo-endpoint (onRelayPacket). */
  private relaySrc: Uint8Array | null = null;
  private relaySrcEndpoint: Endpoint | null = null;
  /** Relay host addresses, resolved at start: they bypass a default route through the tunnel. */
  private relayAddrs: string[] = [];
  private readonly invites: InviteRedeemer;
  /** With MeshKey: the signed roster this host follows (its members are peers too). */
  readonly membership: Membership | null;
  /** In a mesh: NAME.DOMAIN on port 53 of this host's mesh addresses. */
  private names: NameServer | null = null;
  /** The static config's names (Domain =), rebuilt after a reload. */
  private staticZoneCache: NameZone | null = null;
  /** The names registered with the host's resolver (systemd-resolved or resolvconf). */
  private readonly splitDns: SplitDns;
  /** The roster's access policy, as an nftables table on this interface. */
  private readonly firewall: PolicyFirewall;
  /** The table text last handed to the firewall (a roster change that leaves it alone costs nothing). */
  private policyText: string | null = null;
  private uapi: net.Server | null = null;
  private control: net.Server | null = null;
  private tick: NodeJS.Timeout | null = null;
  /** When the pending tick fires (performance.now() time), to pull it in when work appears. */
  private tickAtMs = Infinity;
  private stopped = false;
  /** The heap's trims (heap-trim.ts); null when V8's memory reducer is on and does them. */
  private heapTrim: HeapTrimmer | null = null;
  /** meshd-wireguard mode (DaemonOptions.wireguard): UAPI only, no disco. */
  private readonly wireguard: boolean;
  /** The hard side's extra sockets for birthday probing; what arrives on them is handled as on the data socket. */
  private readonly birthdaySocks = new BirthdaySockets(
    (msg, from) => {
      if (this.stopped) return;
      this.onDatagram(msg, from);
      this.flush();
    },
    (id) => this.openBirthdaySocket(id),
  );
  /** The config sets no MTU: peers' path MTUs are probed, packets too big for one answered with ICMP. */
  private readonly pathMtuProbing: boolean;
  private routes: RouteTable;
  private stopping: Promise<void> | null = null;
  private resolveDone!: () => void;
  /** Resolves when the daemon has stopped and cleaned up. */
  readonly done = new Promise<void>((r) => (this.resolveDone = r));

  private constructor(
    private config: MeshConfig,
    private readonly log: Logger,
    opts: DaemonOptions,
  ) {
    this.iface = config.interfaceName;
    this.wireguard = opts.wireguard ?? false;
    this.fastPath = opts.fastPath ?? fastPathFromEnv(process.env.MESHD_FASTPATH);
    this.device = new Device({
      inPlace: this.fastPath,
      privateKey: config.iface.privateKey,
      clock: systemClock,
      rng: pooledRandom(),
      aead: selectTransportAead(opts.aead ?? process.env.MESHD_AEAD, () => nativeAead(aeadThreadsFromEnv(process.env.MESHD_AEAD_THREADS))),
      mtu: config.iface.mtu ?? tunMtuFor(underlayMtu(config.interfaceName)),
      timers: opts.timers,
    });
    // No MTU = in the config: each peer's direct path starts at 1280 and is probed (path-mtu.ts).
    this.pathMtuProbing = !this.wireguard && config.iface.mtu === null;
    if (this.pathMtuProbing) this.device.pathMtuDefault = PMTU_SAFE;
    if (this.wireguard) this.device.hasKey = false; // the key arrives over the UAPI
    this.firewall = new PolicyFirewall(policyTableName(this.iface), log);
    this.splitDns = new SplitDns(this.iface);
    this.routes = new RouteTable(this.iface, config.iface.table, log, () => ({ udpPort: this.udp?.port ?? 0, relayAddrs: this.relayAddrs }));
    this.stun = new StunService(this.iface, () => this.udp?.port ?? 0, (data, to) => this.udp?.send(data, to), () => this.discovery.candidatesChanged(), log, this.netWatch, (addrs) => {
      // With a default route through the tunnel only the data socket and relay addresses bypass it.
      const bypass = !this.routes.hasDefaultRoute || addrs.every((a) => this.relayAddrs.includes(a));
      return bypass ? this.routes.policyEpoch : null;
    }, (onMessage) => this.openFreshSocket(onMessage));
    this.discovery = new Discovery(this.device, () => this.stun.own.candidates(), () => this.relays?.anyConnected ?? false);
    this.discovery.ownNat = () => this.stun.own.mappingVariesByDestination();
    this.discovery.ownPortsInOrder = () => this.stun.own.portsInOrder();
    if (!this.wireguard && config.iface.hardNatProbes === 'auto') {
      const c = config.iface;
      this.discovery.enableBirthday({ ...DEFAULT_BIRTHDAY_LIMITS, hourlyBudget: c.hardNatProbeBudget, sockets: c.hardNatSockets, probes: c.hardNatProbesPerAttempt });
    }
    this.membership = config.iface.meshKey
      ? new Membership(config.iface.meshKey, rosterFile(config.file), {
          device: this.device,
          log,
          staticKeys: () => new Set(this.config.peers.map((p) => keyId(p.publicKey))),
          reconcileRoutes: () => this.routes.reconcile(this.device),
          resolve: async (hp) => {
            const parsed = parseHostPort(hp);
            return parsed ? resolveEndpoint(parsed, 'roster', 0).catch(() => null) : null;
          },
          publish: (url, signed) => {
            const r = this.relays?.clients.find((c) => c.url === url);
            return !!r && r.publish(this.membership!.meshKey, signed);
          },
          rosterApplied: async (r, self, now) => {
            await this.applyPolicy(r, self, now);
            await this.updateSplitDns();
          },
          flush: () => this.flush(),
        })
      : null;
    if (this.membership) {
      const m = this.membership;
      this.discovery.roster = {
        serial: () => m.serial,
        peerHolds: (peer, serial, now) => m.peerHolds(peer.id, serial, now),
        fromPeer: (peer, delta) => void m.offerDelta(delta, `peer ${peer.name ?? keyToBase64(peer.publicKey)}`),
      };
    }
    this.invites = new InviteRedeemer({
      configFile: config.file,
      iface: this.iface,
      identity: () => this.device.identity,
      isPeer: (key) => this.device.peers.has(keyId(key)),
      mesh: this.membership ? { reloadRoster: () => this.membership!.reloadCache() } : null,
      reload: () => this.reload(),
      log: (msg, fields) => log.info({ component: 'invite', ...fields }, msg),
    });
  }

  /** Brings the interface up. On any failure, whatever was created is removed before the error is thrown. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts.config, opts.log, opts);
    try {
      await d.bringUp();
    } catch (err) {
      await d.teardown(false);
      throw err;
    }
    return d;
  }

  private async bringUp(): Promise<void> {
    const { config, log } = this;
    const cfg = config.iface;
    for (const w of config.ignored) log.warn({ component: 'config' }, `${w}: accepted for wg-quick compatibility, has no effect under meshd`);

    // Everything that can fail without touching the host comes first.
    const endpoints: (Endpoint | null)[] = [];
    for (const p of config.peers) endpoints.push(p.endpoint ? await resolveEndpoint(p.endpoint, config.file, p.line) : null);
    for (const path of [uapiSocketPath(this.iface), controlSocketPath(this.iface)]) {
      if (await socketInUse(path)) throw new MeshdError('EINUSE', `${path} is in use: meshd (or wireguard-go) already runs ${this.iface}`);
    }
    config.peers.forEach((p, i) =>
      this.device.addPeer(
        { publicKey: p.publicKey, presharedKey: p.presharedKey, endpoint: endpoints[i], persistentKeepaliveSec: p.persistentKeepalive, name: p.name },
        p.allowedIps,
      ),
    );

    for (const u of cfg.relays) {
      const host = relayHost(u);
      try {
        this.relayAddrs.push((await resolveEndpoint({ host, port: 1 }, config.file, 0)).address);
      } catch {
        log.warn({ component: 'relay', relay: u }, 'cannot resolve relay host now; it will be retried on connect');
      }
    }

    await runHooks('PreUp', cfg.preUp, this.iface);
    await this.firewall.removeStale();
    this.tun = LinuxTun.open(this.iface, this.fastPath);
    for (const a of cfg.addresses) await addAddress(this.iface, a);
    if (this.wireguard) await setMtu(this.iface, this.device.mtu); // wg-quick (or the admin) brings it up
    else await setMtuAndUp(this.iface, this.device.mtu);
    this.udp = await this.bindUdp(cfg.listenPort ?? 0);
    await this.routes.reconcile(this.device);
    await this.membership?.start();
    if (this.membership || cfg.domain) {
      const m = this.membership;
      this.names = await NameServer.start(cfg.addresses.map((a) => formatIpAddr(a)), () => (m ? m.zone() : this.staticZone()), log);
      await this.updateSplitDns();
    }
    if (!(await setDns(this.iface, cfg.dns))) {
      log.warn({ component: 'dns', dns: cfg.dns }, 'DNS not applied: resolvconf is not installed (apt-get install resolvconf or openresolv)');
    }

    if (cfg.relays.length > 0) {
      this.relays = new Relays(
        cfg.relays,
        () => this.device.identity,
        cfg.relayCa ?? undefined,
        {
          onPacket: (src, packet, relay) => this.onRelayPacket(src, packet, relay),
          onBatchEnd: () => this.flush(),
          onPeerGone: (key, _disconnected, relay) => this.onRelayPeerGone(key, relay),
          onPeerPresent: (key, relay) => this.onRelayPeerPresent(key, relay),
          onRoster: (meshKey, signed, relay) => {
            const m = this.membership;
            if (m && keyId(meshKey) === keyId(m.meshKey)) void m.offer(signed, relay.url);
          },
          onRosterDelta: (meshKey, delta, relay) => {
            const m = this.membership;
            if (!m || keyId(meshKey) !== keyId(m.meshKey)) return;
            void m.offerDelta(delta, relay.url).then((ok) => {
              if (!ok) relay.subscribe(m.meshKey, 0); // ask for the whole roster instead
            });
          },
          onRosterRefused: (reason, relay) => this.membership?.refuse(reason === 'roster-oversized' ? 'roster-oversized' : 'roster-malformed', reason, relay.url),
          onRosterHeld: (meshKey, serial, relay) => {
            const m = this.membership;
            if (m && keyId(meshKey) === keyId(m.meshKey)) m.relayHolds(relay.url, serial);
          },
          onStateChange: (relay) => {
            if (!relay.connected) this.membership?.relayLost(relay.url);
            else if (this.membership && !relay.subscribe(this.membership.meshKey, this.membership.serial)) {
              log.warn({ component: 'mesh', relay: relay.url }, 'this relay does not carry rosters (no --mesh-key): membership changes do not reach this host through it');
            }
            if (relay.connected) {
              this.device.retryWaitingHandshakes(this.handshakeGraceMs(relay));
              this.discovery.candidatesChanged(); // call-me-maybe can travel now: punch at once
            }
            this.flush();
          },
        },
        log,
      );
      this.relays.start();
    }

    await this.stun.start(cfg.stun, cfg.relays, config.file);

    this.uapi = await startUapiServer(this.iface, {
      get: () => formatGet(this.device, this.udp?.port ?? 0, this.udp?.fwMark ?? 0),
      set: (lines) => this.uapiSet(lines),
    });
    this.control = await startControlServer(this.iface, (req) => {
      switch (req.cmd) {
        case 'status':
          return this.firewall.refresh().then(() => this.status());
        case 'ping':
          return pingRound(this.device, this.discovery, req.peer, () => this.flush());
        case 'netcheck':
          return this.netcheck();
        case 'reload':
          return this.reload();
        case 'roster':
          if (!this.membership) throw new MeshdError('ENOMESH', `${this.iface} is not in a mesh (no MeshKey)`);
          return this.membership.reloadCache();
        case 'mesh':
          if (!this.membership) throw new MeshdError('ENOMESH', `${this.iface} is not in a mesh (no MeshKey)`);
          return this.membership.listing();
        case 'down':
          setImmediate(() => void this.stop('meshd down'));
          return { stopping: true };
      }
    });

    if (cfg.metricsListen) {
      const { host, port } = cfg.metricsListen;
      // Loaded only when asked for: prom-client costs 100-200 ms of every start otherwise.
      const { DaemonMetrics, serveMetrics } = await import('./metrics.js');
      const metrics = new DaemonMetrics(() => this.firewall.refresh().then(() => this.status()));
      this.metricsServer = await serveMetrics(metrics, host, port, (err) => this.log.warn({ component: 'metrics', err: err.message }, 'metrics request failed')).catch((err: NodeJS.ErrnoException) => {
        throw new MeshdError('EMETRICS', `${config.file}: MetricsListen = ${host.includes(':') ? `[${host}]` : host}:${port}: cannot listen (${err.code ?? err.message})`);
      });
      log.info({ component: 'metrics', listen: `${host.includes(':') ? `[${host}]` : host}:${port}` }, 'serving Prometheus metrics at /metrics');
    }

    this.tun.start({
      onPacket: (buf, off, len) => this.device.inside(buf.subarray(off, off + len)),
      onPackets: (buf, offsets, lengths, count) => this.device.insideBatch(buf, offsets, lengths, count),
      onBatchEnd: () => this.flush(),
      onError: (errno) => {
        log.error({ component: 'tun', err: { errno } }, 'TUN device read failed; shutting down');
        void this.stop('tun error');
      },
    });
    this.scheduleTick(TICK_INTERVAL_MS);
    this.device.start();
    this.flush();
    await runHooks('PostUp', cfg.postUp, this.iface);
    log.info(
      {
        component: 'daemon',
        interface: this.iface,
        publicKey: keyToBase64(this.device.publicKey),
        listenPort: this.udp.port,
        addresses: cfg.addresses.map(formatCidr),
        peers: config.peers.length,
        aead: this.device.aead.name,
        udp: this.udp.kind,
        tunOffload: this.tun.offload,
        tunUso: this.tun.uso,
      },
      'interface up',
    );
    quickerTierUp();
    if (ownHeapTrim()) {
      const native = loadNative();
      this.heapTrim = new HeapTrimmer({ heapBytes: () => getHeapStatistics().total_heap_size, reduce: () => native.reduceHeap(false) });
    }
    this.warmUp();
  }

  /**
   * Runs the data path between two throwaway in-memory devices (tunnel/warm-up.ts) a step per
   * event-loop turn, so V8 optimises it before the first real packet. MESHD_WARM_UP=off skips it.
   */
  private warmUp(): void {
    if (process.env.MESHD_WARM_UP === 'off') {
      this.settleHeap();
      return;
    }
    const started = performance.now();
    const w = new DataPathWarmUp(this.device);
    const next = (): void => {
      if (this.stopped) return;
      if (w.step()) {
        setImmediate(next);
        return;
      }
      this.log.debug({ component: 'daemon', ms: Math.round(performance.now() - started), packets: w.delivered }, 'data path warmed up');
      this.settleHeap();
    };
    setImmediate(next);
  }

  /** The start-up is over: the heap trim may begin (its first trim waits for a quiet tunnel). */
  private settleHeap(): void {
    this.heapTrim?.settle();
  }

  /**
   * The tick runs every TICK_INTERVAL_MS while anything is due soon (a peer deadline, discovery
   * work, a ping in flight), else every IDLE_TICK_INTERVAL_MS: an idle daemon wakes once a second.
   * Work that appears in between (a peer waking up) pulls the next tick in (see flush).
   */
  private scheduleTick(delayMs: number): void {
    if (this.stopped) return;
    if (this.tick) clearTimeout(this.tick);
    this.tickAtMs = performance.now() + delayMs;
    this.tick = setTimeout(() => this.runTick(), delayMs);
  }

  private runTick(): void {
    this.tick = null;
    this.tickAtMs = Infinity;
    this.followMtu();
    this.device.tick();
    if (!this.wireguard) this.discovery.tick();
    this.membership?.tick(Date.now());
    if (this.heapTrim?.tick(performance.now(), this.readTraffic)) this.log.debug({ component: 'daemon', heap: getHeapStatistics().total_heap_size }, 'heap trim started');
    this.flush();
    const now = this.device.clock.now();
    const untilDue = this.device.nextDeadlineMs() - now;
    const busy = this.discovery.busy() || untilDue < IDLE_TICK_INTERVAL_MS;
    const untilUrgent = this.device.nextUrgentMs() - now;
    this.scheduleTick(Math.min(busy ? TICK_INTERVAL_MS : IDLE_TICK_INTERVAL_MS, Math.max(0, untilUrgent)));
  }

  /** Bytes the tunnel has moved, in and out, over all peers: what tells the heap trim it is quiet. */
  private readonly readTraffic = (): number => {
    let n = 0;
    for (const p of this.device.peers.values()) n += p.rxBytes + p.txBytes;
    return n;
  };

  /**
   * The interface's MTU as `ip link set IFACE mtu N` left it (wg-quick sets it after start), for
   * padding, read when a link changed (NetworkWatch; without notifications, at most once a second).
   * After the interface moved to another namespace it is not in ours to read: the last value stays
   * (the kernel still never hands over a bigger packet).
   */
  private followMtu(): void {
    const gen = this.netWatch.generation();
    if (gen === this.mtuReadGen) return;
    const now = performance.now();
    if (!this.netWatch.notified && now - this.mtuReadAtMs < 1000) return;
    this.mtuReadGen = gen;
    this.mtuReadAtMs = now;
    try {
      const mtu = Number(readFileSync(`/sys/class/net/${this.iface}/mtu`, 'utf8'));
      if (Number.isInteger(mtu) && mtu >= 68 && mtu !== this.device.mtu) {
        this.log.info({ component: 'tun', mtu, previous: this.device.mtu }, 'interface MTU changed');
        this.device.mtu = mtu;
      }
    } catch {
      // moved to another namespace, or gone (the TUN read fails then)
    }
  }
  private mtuReadAtMs = -Infinity;
  private mtuReadGen = -1;

  /**
   * The batched socket a birthday socket's port moves to once probing has settled on it (on the fast
   * path only; null otherwise, or when it cannot bind: the dgram socket stays then).
   */
  /** A birthday probing socket through the addon, small until kept (BirthdaySockets); null: node:dgram. */
  private openBirthdaySocket(id: number): NativeUdpConn | null {
    if (!this.fastPath || this.stopped) return null;
    try {
      // Marked as the data socket is (FwMark): policy routing by mark must see probes the same way.
      const conn = NativeUdpConn.bind(0, this.udpHandlers, this.udp?.fwMark ?? this.config.iface.fwMark, id, SMALL_SIZES);
      if (this.pathMtuProbing) conn.setPathMtuProbing();
      return conn;
    } catch (err) {
      this.log.warn({ component: 'disco', sock: id, err: (err as Error).message }, 'birthday socket through node:dgram');
      return null;
    }
  }

  /**
   * A throwaway socket for STUN from a fresh port (mapping-check.ts): with FwMark set, the addon's,
   * marked as the data socket is, so that rules routing by mark see its requests as they see the
   * probes; node:dgram otherwise (or when the addon cannot bind).
   */
  private async openFreshSocket(onMessage: (b: Uint8Array) => void): Promise<FreshSocket | null> {
    const mark = this.udp?.fwMark ?? this.config.iface.fwMark;
    if (!this.fastPath || mark === 0 || this.stopped) return openDgramSocket(onMessage);
    try {
      const conn = NativeUdpConn.bind(0, { onMessage: (m) => onMessage(m), onBatchEnd: () => undefined }, mark, undefined, SMALL_SIZES);
      return { send: (data, to) => conn.send(data, to), close: () => conn.close() };
    } catch (err) {
      this.log.warn({ component: 'stun', err: (err as Error).message }, 'fresh STUN socket through node:dgram (no FwMark)');
      return openDgramSocket(onMessage);
    }
  }

  /** The data socket: the addon's (batched) on the fast path, node:dgram otherwise. */
  private async bindUdp(port: number): Promise<PacketConn> {
    let conn: PacketConn;
    if (this.fastPath) conn = NativeUdpConn.bind(port, this.udpHandlers, this.config.iface.fwMark);
    else {
      if (this.config.iface.fwMark !== 0) this.log.warn({ component: 'udp', fwMark: this.config.iface.fwMark }, 'FwMark ignored: the node:dgram socket (MESHD_FASTPATH=off) cannot carry a mark');
      conn = await UdpConn.bind(port, this.udpHandlers);
    }
    if (this.pathMtuProbing) {
      // Probes must not be fragmented by this host's kernel, or every size would seem to arrive.
      const err = conn.setPathMtuProbing();
      this.discovery.pathMtu = err === null;
      if (err) this.log.warn({ component: 'udp', err }, `path MTU not probed: packets to peers stay within ${PMTU_SAFE} bytes`);
    }
    return conn;
  }

  /**
   * A received batch: WireGuard messages go to the device as one batch (in order, compacted in
   * place into the same arrays); disco, STUN and the rest one by one, as onDatagram.
   */
  private onDatagrams(buf: Uint8Array, offsets: Int32Array, lengths: Int32Array, from: Endpoint[], count: number): void {
    let w = 0;
    for (let i = 0; i < count; i++) {
      const off = offsets[i];
      const len = lengths[i];
      const t = len >= 4 ? buf[off] : 0;
      if (t >= 1 && t <= 4 && buf[off + 1] === 0 && buf[off + 2] === 0 && buf[off + 3] === 0) {
        offsets[w] = off;
        lengths[w] = len;
        from[w++] = from[i];
      } else this.onDatagram(buf.subarray(off, off + len), from[i]);
    }
    if (w > 0) this.device.outsideBatch(buf, offsets, lengths, from, w);
  }

  /** One datagram that is not a WireGuard data message (or any datagram on the node:dgram path). */
  private onDatagram(msg: Uint8Array, from: Endpoint): void {
    switch (classify(msg)) {
      case 'wireguard':
        this.device.outside(msg, from);
        break;
      case 'disco':
        if (this.wireguard) this.device.outsideDrops.add('not-wireguard');
        else if (!this.invites.handle(msg, (data) => this.udp?.send(data, from))) this.discovery.handle(msg, from);
        break;
      case 'stun':
        if (!this.stun.onDatagram(msg)) this.device.outsideDrops.add('not-wireguard');
        break;
      default:
        this.device.outsideDrops.add('not-wireguard');
    }
  }

  /**
   * Re-reads the config file and applies only what changed: peers added, removed (sessions, keys
   * and routes wiped) or changed; the private key; the listen port. A file that does not load
   * changes nothing.
   */
  async reload(): Promise<ReturnType<typeof summarize>> {
    const next = loadConfig(this.config.file, this.iface);
    const plan = planReload(this.config, next);
    const endpoints = new Map<PeerConfig, Endpoint>();
    for (const p of [...plan.added, ...plan.changed.map((c) => c.after)]) {
      if (p.endpoint) endpoints.set(p, await resolveEndpoint(p.endpoint, next.file, p.line));
    }
    const ep = (p: PeerConfig) => endpoints.get(p) ?? null;
    if (plan.privateKeyChanged) {
      this.device.setPrivateKey(next.iface.privateKey);
      this.discovery.reset();
    }
    for (const p of plan.removed) this.device.removePeer(keyId(p.publicKey));
    for (const p of plan.added) {
      this.device.removePeer(keyId(p.publicKey)); // a roster member that is now a static peer
      this.device.addPeer({ publicKey: p.publicKey, presharedKey: p.presharedKey, endpoint: ep(p), persistentKeepaliveSec: p.persistentKeepalive, name: p.name }, p.allowedIps);
    }
    for (const c of plan.changed) {
      const peer = this.device.peers.get(keyId(c.after.publicKey));
      if (!peer) continue;
      if (c.what.includes('AllowedIPs')) {
        this.device.allowedIps.removeValue(peer);
        for (const cidr of c.after.allowedIps) this.device.allowedIps.insert(cidr, peer);
      }
      if (c.what.includes('Endpoint')) this.device.setEndpoint(peer, ep(c.after));
      if (c.what.includes('PresharedKey')) peer.setPresharedKey(c.after.presharedKey);
      if (c.what.includes('PersistentKeepalive')) this.device.setPersistentKeepalive(peer, c.after.persistentKeepalive);
      if (c.what.includes('Name')) peer.name = c.after.name;
    }
    if (plan.listenPortChanged) {
      const fresh = await this.bindUdp(next.iface.listenPort ?? 0);
      this.udp?.close();
      this.udp = fresh;
      await this.routes.refreshBypass(this.device);
    }
    await this.routes.reconcile(this.device);
    // Settings that need a restart keep their running values.
    this.config = { ...next, iface: { ...next.iface, addresses: this.config.iface.addresses, mtu: this.config.iface.mtu, dns: this.config.iface.dns, table: this.config.iface.table, relays: this.config.iface.relays, stun: this.config.iface.stun, relayCa: this.config.iface.relayCa, fwMark: this.config.iface.fwMark, preUp: this.config.iface.preUp, postUp: this.config.iface.postUp, preDown: this.config.iface.preDown, postDown: this.config.iface.postDown, domain: this.config.iface.domain, splitDns: this.config.iface.splitDns, hardNatProbes: this.config.iface.hardNatProbes, hardNatProbeBudget: this.config.iface.hardNatProbeBudget, hardNatSockets: this.config.iface.hardNatSockets, hardNatProbesPerAttempt: this.config.iface.hardNatProbesPerAttempt } };
    this.staticZoneCache = null; // peers' names may have changed
    if (plan.added.length || plan.removed.length) await this.membership?.staticPeersChanged();
    this.flush();
    const s = summarize(plan);
    this.log.info({ component: 'daemon', ...s }, 'config reloaded');
    return s;
  }

  private async netcheck(): Promise<NetcheckReport> {
    const results = await this.stun.round();
    const udp = results.some((r) => r.mapped);
    return {
      udp,
      stun: results.map((r) => ({ server: r.server, mapped: r.mapped ? formatEndpoint(r.mapped) : null, rttMs: r.rttMs, error: r.error ?? null })),
      natMappingVariesByDestination: this.stun.own.verdict(results),
      natPortsInOrder: this.stun.own.verdict(results) === true && portsInOrder(results),
      relays: this.relays?.status() ?? [],
    };
  }

  /** One packet of a relay message (the message's end flushes: onBatchEnd). */
  private onRelayPacket(src: Uint8Array, packet: Uint8Array, relay: RelayClient): void {
    // The packets of one batch share their source key: one pseudo-endpoint for all of them.
    if (src !== this.relaySrc) {
      this.relaySrc = src;
      this.relaySrcEndpoint = relayEndpoint(relay.url, src);
    }
    const from = this.relaySrcEndpoint!;
    const kind = classify(packet);
    if (kind === 'wireguard') this.device.outside(packet, from);
    else if (kind === 'disco') {
      if (!this.invites.handle(packet, (data) => relay.send(src, data))) this.discovery.handle(packet, from);
    }
    else this.device.outsideDrops.add('not-wireguard');
  }

  /** A relay says the peer is not there: if another relay now carries it, re-send a pending handshake through that one. */
  private onRelayPeerGone(key: Uint8Array, relay: RelayClient): void {
    const peer = this.device.peers.get(keyId(key));
    if (!peer) return;
    this.discovery.relayPeerGone(peer.id);
    const next = this.relays?.choose(peer.id);
    if (next && next !== relay && peer.timers.retransmitHandshakeAt !== Infinity) {
      this.device.handshakeSoon(peer, this.handshakeGraceMs(next));
      this.flush();
    }
  }

  /** A relay says the peer logged in: what waited for it goes now (DESIGN.md §4, docs/architecture.md). */
  private onRelayPeerPresent(key: Uint8Array, relay: RelayClient): void {
    const peer = this.device.peers.get(keyId(key));
    if (!peer) return;
    // The peer may have restarted, and its direct path died with it: a new process without
    // ListenPort has a new port, and one that was the hard side of birthday probing lost the extra
    // socket the path ran through (not always known here: a roam to the hard side's socket after our
    // attempt ended is not labelled a birthday path). So the direct path is not trusted until it
    // answers again: the handshake below goes both ways (an untrusted endpoint still gets handshakes),
    // and a path that survived (the same port) is trusted again at the peer's first direct reply.
    peer.lastDirectRxMs = 0;
    this.device.handshakeSoon(peer, this.handshakeGraceMs(relay));
    this.discovery.peerArrived(peer);
    this.flush();
  }

  /**
   * How long a handshake through `relay` may take before an initiation counts as lost
   * (Device.handshakeSoon): two round trips to the relay (ours and, about as long, the peer's), and
   * 20 ms for the peer to answer.
   */
  private handshakeGraceMs(relay: RelayClient): number {
    return 2 * (relay.latencyMs ?? 0) + 20;
  }

  /** Hands what the device queued to the socket or relay (path choice), the TUN and the log. */
  private flush(): void {
    // One clock read for the flush: the device's clock is performance.now() too (systemClock).
    const now = performance.now();
    if (this.device.hasWoken() && this.tickAtMs - now > TICK_INTERVAL_MS) this.scheduleTick(0);
    else {
      // An early handshake re-send set since the last tick, due before the next one.
      const urgent = this.device.nextUrgentMs();
      if (urgent < this.tickAtMs) this.scheduleTick(Math.max(0, urgent - now));
    }
    const out = this.device.out;
    // A flush's datagrams mostly go to one peer: choose its path (and relay) once, not per datagram.
    let pathPeer: Peer | null = null;
    let path: PathChoice | null = null;
    let relay: RelayClient | null = null;
    // Indexed loops: no iterator object per loop and flush (the flush runs on every wakeup).
    for (let i = 0; i < out.net.length; i++) {
      const d = out.net[i];
      if (d.to?.relay) {
        // An answer to something that came through a relay (a cookie reply) goes back the same way.
        if (!this.relays?.sendVia(d.to.relay.url, d.to.relay.key, d.data)) this.device.insideDrops.add('no-endpoint');
        continue;
      }
      const peer = this.device.peers.get(d.peerId);
      if (!peer) {
        // A reply to a sender that is not a peer yet (a cookie reply) leaves from the socket the
        // datagram came in on (a birthday socket: from another, it would come from another public
        // port, which the sender's NAT need not let in).
        if (d.to) this.queueDirect(d.data, d.to);
        continue;
      }
      if (peer !== pathPeer || !path) {
        pathPeer = peer;
        path = choosePath(peer, now, this.relays?.anyConnected ?? false);
        relay = path.relay ? (this.relays?.choose(peer.id) ?? null) : null;
        if (this.pathMtuProbing) setPeerMtu(peer, path);
      }
      const direct = path.direct ?? (path.untrusted && goesToUntrusted(d.data) ? path.untrusted : null);
      let sent = direct !== null && this.queueDirect(d.data, direct);
      if (relay) {
        // Queued into the relay's batch for this peer (sent at the end of this flush).
        if (relay.queue(peer.publicKey, d.data)) sent = true;
        else if (!sent) {
          this.device.insideDrops.add('relay-queue-full'); // more than RELAY_MAX_BUFFERED_BYTES waits for the relay
          continue;
        }
      }
      if (!sent) this.device.insideDrops.add('no-endpoint');
    }
    for (let i = 0; i < out.runs.length; i++) this.sendRun(out.runs[i], now);
    this.relays?.flush();
    if (this.tun && out.tun.length > 0) {
      this.tun.writeBatch(out.tun, out.tun.length);
      this.tunWritten = true;
    }
    for (let i = 0; i < out.events.length; i++) this.logEvent(out.events[i]);
    out.clear();
    if (this.wireguard) clearArray(this.discovery.out); // a plain WireGuard peer speaks no disco
    for (let i = 0; i < this.discovery.out.length; i++) {
      const d = this.discovery.out[i];
      if (d.to?.relay) this.relays?.sendVia(d.to.relay.url, d.to.relay.key, d.data);
      else if (d.to) this.queueDirect(d.data, d.to);
      else {
        const peer = this.device.peers.get(d.peerId);
        if (peer) this.relays?.send(peer.publicKey, d.data);
      }
    }
    clearArray(this.discovery.out);
    this.udp?.flush();
    this.birthdaySocks.flush();
    if (this.discovery.events.length > 0) {
      const events = this.discovery.events.splice(0);
      for (const e of events) this.discoEvent(e);
    }
  }

  /** Queues a datagram on the socket `to` is reached from: a birthday socket, else the data socket. */
  private queueDirect(data: Uint8Array, to: Endpoint): boolean {
    if (to.sock !== undefined) this.birthdaySocks.send(data, to);
    else if (this.udp) this.udp.queue(data, to);
    else return false;
    return true;
  }

  private discoEvent(e: DiscoEvent): void {
    const peer = this.device.peers.get(e.peerId);
    const name = peer ? (peer.name ?? keyToBase64(peer.publicKey)) : e.peerId;
    switch (e.type) {
      case 'direct-path': {
        const birthday = peer && this.discovery.birthday?.found(peer, e.endpoint);
        this.log.info({ component: 'disco', peer: name, endpoint: formatEndpoint(e.endpoint), rttMs: e.rttMs, ...(birthday ? { via: 'birthday probing' } : {}) }, 'direct path');
        break;
      }
      case 'birthday-open':
        this.log.info({ component: 'disco', peer: name, sockets: e.count }, 'birthday probing: opening sockets towards the peer');
        // Beside them, a fresh socket's port at our public address, told to the peer: behind a NAT
        // that hands out ports in order, the sockets' ports lie next to it (docs/birthday.md).
        this.announceFreshPort(e.peerId, name);
        // With a default route through the tunnel, the sockets' traffic to the peer must not enter it.
        void this.routes.bypassPeer(e.peerId, e.target).then(() => this.birthdaySocks.open(e.peerId, e.count)).then((ids) => {
          const p = this.device.peers.get(e.peerId);
          if (this.stopped || !p) return this.birthdaySocks.close(e.peerId);
          this.discovery.birthdaySocketsReady(p, ids);
          this.flush();
        });
        break;
      case 'birthday-fresh':
        // Both sides hard, behind NATs that count up: each probes the ports after the other's fresh one.
        this.announceFreshPort(e.peerId, name);
        break;
      case 'birthday-measure':
        // Both sides hard: how far our NAT's counter moved since the fresh port the peer aims at.
        this.withFreshPort(e.peerId, (p, port) => {
          this.log.info({ component: 'disco', peer: name, port }, 'birthday probing: measured where our NAT hands out ports now');
          this.discovery.birthdayMeasured(p, port);
        });
        break;
      case 'birthday-keep':
        this.log.info({ component: 'disco', peer: name, sockets: e.socks.length }, 'birthday probing: keeping the sockets that met or heard from the peer, closing the rest');
        this.birthdaySocks.keep(e.peerId, e.socks);
        break;
      case 'birthday-close':
        this.birthdaySocks.close(e.peerId);
        void this.routes.unbypassPeer(e.peerId);
        break;
    }
  }

  /** Takes a fresh socket's port at our public address (StunService.freshPort) and tells the peer. */
  private announceFreshPort(peerId: string, name: string): void {
    this.withFreshPort(peerId, (p, port) => {
      if (port === null) return;
      this.log.info({ component: 'disco', peer: name, port }, 'birthday probing: telling the peer where a fresh socket of ours was mapped');
      this.discovery.announceFreshPort(p, port);
    });
  }

  /** A fresh socket's port (null: no answer) handed to `use` while the daemon runs and the peer is there, then a flush. */
  private withFreshPort(peerId: string, use: (p: Peer, port: number | null) => void): void {
    void this.stun.freshPort().then((port) => {
      const p = this.device.peers.get(peerId);
      if (this.stopped || !p) return;
      use(p, port);
      this.flush();
    });
  }

  /** A run of sealed data for one peer (Outbox.runs): direct from where it lies, and/or via a relay. */
  private sendRun(r: DatagramRun, now: number): void {
    const peer = this.device.peers.get(r.peerId);
    if (!peer) return;
    const path = choosePath(peer, now, this.relays?.anyConnected ?? false);
    const relay = path.relay ? (this.relays?.choose(peer.id) ?? null) : null;
    if (this.pathMtuProbing) setPeerMtu(peer, path);
    // Data never goes to an untrusted endpoint (goesToUntrusted): only a confirmed direct path.
    let sent = 0;
    if (path.direct?.sock !== undefined) {
      // The peer is reached from a birthday socket: batched through the addon, else (node:dgram)
      // one datagram at a time.
      if (!this.birthdaySocks.queueRun(r, path.direct)) {
        for (let k = r.start, end = r.start + r.count; k < end; k++) this.birthdaySocks.send(r.buf.subarray(r.offsets[k], r.offsets[k] + r.lengths[k]), path.direct);
      }
      sent = r.count;
    } else if (path.direct && this.udp) {
      this.udp.queueRun(r, path.direct);
      sent = r.count;
    }
    if (relay) {
      let queued = 0;
      for (let k = r.start, end = r.start + r.count; k < end; k++) {
        if (relay.queue(peer.publicKey, r.buf.subarray(r.offsets[k], r.offsets[k] + r.lengths[k]))) queued++;
      }
      if (sent === 0) {
        for (let k = queued; k < r.count; k++) this.device.insideDrops.add('relay-queue-full');
        sent = r.count;
      }
    }
    for (let k = sent; k < r.count; k++) this.device.insideDrops.add('no-endpoint');
  }

  private logEvent(e: DeviceEvent): void {
    const peer = this.device.peers.get(e.peerId);
    const name = peer ? (peer.name ?? keyToBase64(peer.publicKey)) : e.peerId;
    switch (e.type) {
      case 'handshake-complete':
        if (e.initiator) this.handshakesCompleted.initiator++;
        else this.handshakesCompleted.responder++;
        this.log.debug({ component: 'tunnel', peer: name, initiator: e.initiator }, 'handshake complete');
        break;
      case 'handshake-initiated':
        this.handshakeInitiationsSent++;
        this.log.debug({ component: 'tunnel', peer: name, attempt: e.attempt }, 'handshake initiation sent');
        break;
      case 'handshake-gave-up':
        this.handshakesFailed++;
        this.log.info({ component: 'tunnel', peer: name, reason: 'no response for REKEY_ATTEMPT_TIME' }, 'handshake gave up');
        break;
      case 'endpoint-changed':
        this.log.info({ component: 'tunnel', peer: name, endpoint: formatEndpoint(e.endpoint) }, 'peer endpoint changed');
        break;
      case 'keys-zeroed':
        this.log.debug({ component: 'tunnel', peer: name }, 'session keys zeroed');
        break;
    }
  }

  private async uapiSet(lines: string[]): Promise<number> {
    const r = applySet(this.device, lines);
    if (lines.some((l) => l.startsWith('private_key='))) this.discovery.reset();
    if (r.added.length || r.removed.length) this.log.info({ component: 'uapi', added: r.added, removed: r.removed }, 'peers changed over UAPI');
    try {
      if (r.fwMark !== undefined && this.udp) {
        const err = this.udp.setMark(r.fwMark);
        if (err) {
          this.log.warn({ component: 'uapi', err }, 'could not set fwmark');
          return 1; // EPERM, as wg(8) reports it
        }
        this.config = { ...this.config, iface: { ...this.config.iface, fwMark: r.fwMark } };
        this.log.info({ component: 'uapi', fwMark: r.fwMark }, 'firewall mark changed');
      }
      if (r.listenPort !== undefined && r.listenPort !== this.udp?.port) {
        const next = await this.bindUdp(r.listenPort);
        this.udp?.close();
        this.udp = next;
        await this.routes.refreshBypass(this.device);
        this.log.info({ component: 'uapi', listenPort: next.port }, 'listen port changed');
      }
      if (r.routesChanged) await this.routes.reconcile(this.device);
    } catch (err) {
      this.log.warn({ component: 'uapi', err }, 'could not apply set');
      return 98; // EADDRINUSE-like failure reported to wg(8)
    }
    this.flush();
    return r.errno;
  }

  status(): DaemonStatus {
    return buildStatus(this.device, {
      iface: this.iface,
      listenPort: this.udp?.port ?? 0,
      addresses: this.config.iface.addresses.map(formatCidr),
      relays: this.relays?.status() ?? [],
      endpoints: this.stun.own.list(),
      natMappingVariesByDestination: this.stun.own.mappingVariesByDestination(),
      natPortsInOrder: this.stun.own.portsInOrder(),
      discoDrops: this.discovery.drops.snapshot(),
      counters: {
        handshakeInitiationsSent: this.handshakeInitiationsSent,
        handshakeInitiationsReceived: this.device.handshakeStats.initiationsReceived,
        handshakeResponsesReceived: this.device.handshakeStats.responsesReceived,
        handshakesCompletedAsInitiator: this.handshakesCompleted.initiator,
        handshakesCompletedAsResponder: this.handshakesCompleted.responder,
        handshakesFailed: this.handshakesFailed,
        // Replies whose sticky source address the kernel refused (it was removed): sent without it.
        ...(this.udp instanceof NativeUdpConn ? { udpSourceRefused: this.udp.stats.sourceRefused } : {}),
        ...Object.fromEntries(Object.entries(this.discovery.sent).map(([k, v]) => [`disco-${k}-sent`, v])),
        ...Object.fromEntries(Object.entries(this.discovery.received).map(([k, v]) => [`disco-${k}-received`, v])),
        pathMtuProbesSent: this.discovery.pathMtuProbesSent,
        // The daemon's own heap trims (heap-trim.ts): 1 after start-up, one more after each burst.
        ...(this.heapTrim ? { heapTrims: this.heapTrim.trims } : {}),
        ...(this.discovery.birthday
          ? {
              birthdayAttempts: this.discovery.birthday.counters.attempts,
              birthdaySuccesses: this.discovery.birthday.counters.successes,
              birthdayProbesSent: this.discovery.birthday.counters.probesSent,
              birthdaySocketsOpened: this.discovery.birthday.counters.socketsOpened,
              birthdaySocketsOpen: this.birthdaySocks.size,
              birthdaySendFailed: this.birthdaySocks.sendFailed,
              birthdaySocketsBatched: this.birthdaySocks.batched,
            }
          : {}),
      },
      dataPath: { udp: this.udp?.kind ?? 'none', tunOffload: this.tun?.offload ?? false, tunUso: this.tun?.uso ?? false, aead: this.device.aead.name },
      ioDrops: {
        outside: this.udp?.drops().outside ?? {},
        inside: { ...this.udp?.drops().inside, ...this.tun?.drops() },
      },
      mesh: this.membership ? { ...this.membership.status(), policy: this.firewall.status() } : null,
      names: this.names ? { ...this.names.status(), domain: this.namesDomain(), resolver: this.splitDns.status() } : null,
      dnsNameOf: (p) => this.membership?.dnsNameOf(p.publicKey) ?? null,
      pathOf: (p) => this.pathOf(p),
      rttOf: (p) => this.discovery.lastRttMs(p),
      pathMtuOf: (p) => this.pathMtuOf(p),
      birthdayOf: (p) => this.discovery.birthday?.statusOf(p) ?? null,
    });
  }

  /** The domain the name server answers for (a mesh's, once its roster is known; else Domain =). */
  private namesDomain(): string | null {
    return this.membership ? (this.membership.roster?.domain ?? null) : this.config.iface.domain;
  }

  private staticZone(): NameZone | null {
    const domain = this.config.iface.domain;
    if (!domain) return null;
    this.staticZoneCache ??= staticZone(domain, this.config.peers, this.config.iface.addresses);
    return this.staticZoneCache;
  }

  /** Registers (or re-registers, after a domain change) the names with the host's resolver. */
  private async updateSplitDns(): Promise<void> {
    const domain = this.namesDomain();
    if (!this.names || !domain || !this.config.iface.splitDns || this.stopped) return;
    await this.splitDns.apply(domain, this.names.listen.map((l) => l.replace(/^\[|\]?:53$/g, '')));
    const st = this.splitDns.status();
    if (st.error) this.log.warn({ component: 'dns', err: st.error }, 'the mesh names are not registered with the host resolver');
    else if (st.applied) this.log.info({ component: 'dns', backend: st.backend, domain, servers: st.servers }, 'the mesh names are registered with the host resolver');
    else if (st.hint) this.log.info({ component: 'dns' }, st.hint);
  }

  /** Compiles the roster's policy for this host and installs it when it differs from the one in force. */
  private async applyPolicy(r: Roster, self: RosterMember | null, nowMs: number): Promise<void> {
    const text = self && r.policy ? compilePolicy(r.policy, r, self, this.iface, nowMs) : null;
    if (text === this.policyText) return;
    this.policyText = text;
    await this.firewall.apply(text, self && r.policy ? hostRules(r.policy, r, self, nowMs) : [], r, self);
  }

  private pathMtuOf(p: Peer): PathMtuStatus {
    if (!this.pathMtuProbing) return { mtu: this.device.mtu, source: 'configured' };
    if (p.mtu === 0) return { mtu: this.device.mtu, source: 'relay' };
    const s = this.discovery.pathMtuOf(p);
    if (s && s.endpoint === (p.endpoint ? formatEndpoint(p.endpoint) : null)) return { mtu: s.mtu, source: s.found !== null ? 'probed' : 'probing' };
    return { mtu: p.pathMtu, source: 'default' };
  }

  /** The path a peer's traffic takes now, and why it is relayed. */
  private pathOf(p: Peer): PathStatus {
    const now = this.device.clock.now();
    const direct = (e: Endpoint): PathStatus => ({ kind: 'direct', endpoint: formatEndpoint(e), ...(this.discovery.birthday?.found(p, e) ? { via: 'birthday probing' as const } : {}) });
    if (isDirectConfirmed(p, now) && p.endpoint) return direct(p.endpoint);
    const live = p.lastHandshakeWallMs > 0 && this.device.clock.wall() - p.lastHandshakeWallMs < this.device.timers.rejectAfterTimeMs;
    if (!live) return { kind: 'none', why: p.endpoint || this.relays ? 'no handshake in the last 180 s' : 'no endpoint known and no relay configured' };
    if (!this.relays) return p.endpoint ? direct(p.endpoint) : { kind: 'none', why: 'no endpoint known' };
    const relay = this.relays.choose(p.id);
    const why = choosePath(p, now, true).why ?? 'direct path not confirmed';
    if (relay) return { kind: 'relay', relay: relay.url, why };
    return { kind: 'none', why: `${why}, and no relay is connected` };
  }

  /** Stops the daemon: PreDown, sockets, interface (with its routes), PostDown. Idempotent. */
  stop(reason: string): Promise<void> {
    if (!this.stopping) {
      this.log.info({ component: 'daemon', reason }, 'shutting down');
      this.stopping = this.teardown(true).finally(() => this.resolveDone());
    }
    return this.stopping;
  }

  private async teardown(runDownHooks: boolean): Promise<void> {
    const cfg = this.config.iface;
    if (runDownHooks) await runHooks('PreDown', cfg.preDown, this.iface).catch((err) => this.log.warn({ component: 'daemon', err }, 'PreDown failed'));
    this.stopped = true;
    if (this.tick) clearTimeout(this.tick);
    this.tick = null;
    this.stun.stop();
    this.netWatch.close();
    if (this.uapi) closeUnix(this.uapi, uapiSocketPath(this.iface));
    if (this.control) closeUnix(this.control, controlSocketPath(this.iface));
    this.uapi = this.control = null;
    if (this.metricsServer) {
      this.metricsServer.closeAllConnections();
      await new Promise<void>((resolve) => this.metricsServer!.close(() => resolve()));
      this.metricsServer = null;
    }
    await this.splitDns.remove();
    this.names?.close();
    this.names = null;
    await this.firewall.remove();
    this.relays?.stop();
    this.relays = null;
    this.udp?.close();
    this.birthdaySocks.closeAll();
    this.udp = null;
    await this.routes.removePolicy().catch((err: Error) => this.log.warn({ component: 'routes', err: err.message }, 'could not remove routing rules'));
    if (this.tun) await unsetDns(this.iface, cfg.dns);
    this.tun?.close();
    this.tun = null;
    for (const p of this.device.peers.values()) this.device.clearSessions(p);
    if (runDownHooks) await runHooks('PostDown', cfg.postDown, this.iface).catch((err) => this.log.warn({ component: 'daemon', err }, 'PostDown failed'));
  }
}
