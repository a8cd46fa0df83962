// The daemon's view of its own public endpoints: STUN rounds from the data socket every
// STUN_REFRESH_MS and whenever the host's interface addresses change, and the candidates they give.
import type { Logger } from '../log.js';
import { relayHost, type HostPort } from '../config/config.js';
import { resolveEndpoint } from '../daemon/resolve.js';
import type { Endpoint } from '../tunnel/endpoint.js';
import { OwnEndpoints } from './endpoints.js';
import type { NetworkWatch } from './network-watch.js';
import { StunProber, type StunResult } from './stun-client.js';
import { freshSocketMapping, mappingVariesFromFreshSocket, openDgramSocket, type OpenFreshSocket } from './mapping-check.js';
import { publicV4 } from './birthday-probe.js';

/** STUN refresh: often enough to notice a NAT rebinding well before UDP conntrack (30 s) forgets us. */
export const STUN_REFRESH_MS = 20_000;
export const STUN_TIMEOUT_MS = 2_000;
export const DEFAULT_STUN_PORT = 3478;
/**
 * How often interface addresses are checked (only when NetworkWatch saw a link or address change,
 * when it can); a change (new network) triggers a STUN round at once.
 */
export const NETWORK_CHECK_MS = 2_000;

export class StunService {
  readonly own: OwnEndpoints;
  private readonly prober = new StunProber();
  private servers: { name: string; ep: Endpoint }[] = [];
  private timers: NodeJS.Timeout[] = [];
  /** Aborted on stop: ends a second-opinion check (its socket) at once. */
  private readonly stopped = new AbortController();
  /** The NetworkWatch generation the interface addresses were last compared at. */
  private checkedGen = -1;

  constructor(
    iface: string,
    port: () => number,
    private readonly send: (data: Uint8Array, to: Endpoint) => void,
    private readonly onCandidatesChanged: () => void,
    private readonly log: Logger,
    private readonly watch: NetworkWatch,
    /**
     * Null when a socket other than the data socket would not reach these STUN server addresses
     * outside the tunnel now (with a default route through it, only relay addresses do). Else a value
     * that stays the same while the routes do: a check the routes changed under is not believed.
     */
    private readonly freshSocketRoute: (addrs: string[]) => number | null = () => 0,
    /** Opens the throwaway sockets of freshPort and the second opinion (the daemon's carry its FwMark). */
    private readonly openFresh: OpenFreshSocket = openDgramSocket,
  ) {
    this.own = new OwnEndpoints(iface, port);
  }

  /** Resolves the servers (configured, else port 3478 on each relay host) and starts refreshing. */
  async start(configured: HostPort[], relayUrls: string[], configFile: string): Promise<void> {
    const wanted = configured.length ? configured : relayUrls.map((u) => ({ host: relayHost(u), port: DEFAULT_STUN_PORT }));
    for (const hp of wanted) {
      const name = `${hp.host.includes(':') ? `[${hp.host}]` : hp.host}:${hp.port}`;
      try {
        this.servers.push({ name, ep: await resolveEndpoint(hp, configFile, 0) });
      } catch (err) {
        this.log.warn({ component: 'stun', server: name, err: (err as Error).message }, 'cannot resolve STUN server; skipping it');
      }
    }
    void this.refresh();
    this.timers.push(setInterval(() => void this.refresh(), STUN_REFRESH_MS));
    this.timers.push(
      setInterval(() => {
        const gen = this.watch.generation();
        if (gen === this.checkedGen) return;
        this.checkedGen = gen;
        if (!this.own.localAddressesChanged()) return;
        this.log.info({ component: 'stun' }, 'network change: interface addresses changed; refreshing endpoints');
        void this.refresh();
      }, NETWORK_CHECK_MS),
    );
  }

  stop(): void {
    this.stopped.abort();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.prober.cancelAll();
  }

  /** A datagram classified as STUN; false when it answers nothing we asked. */
  onDatagram(b: Uint8Array): boolean {
    return this.prober.onDatagram(b);
  }

  /** One binding request to every server, in parallel. */
  round(): Promise<StunResult[]> {
    return Promise.all(this.servers.map((s) => this.prober.probe(s.ep, s.name, this.send, STUN_TIMEOUT_MS)));
  }

  private async refresh(): Promise<void> {
    if (this.own.update(await this.round())) {
      this.log.info({ component: 'stun', endpoints: this.own.list() }, 'own endpoints changed');
      this.onCandidatesChanged();
    }
    // Call-me-maybe says what NAT we are behind: a changed verdict goes out as candidates do.
    if (await this.secondOpinion()) this.onCandidatesChanged();
  }

  /**
   * Birthday probing's hard side, as an attempt starts: the port of our public IPv4 address a new
   * socket is mapped to (one STUN request from a fresh socket, mapping-check.ts). Null without an
   * answer, when the socket's requests would enter the tunnel, when the routes changed meanwhile, or
   * when it maps to another address than the data socket's.
   */
  async freshPort(): Promise<number | null> {
    const server = this.servers.find((s) => !s.ep.address.includes(':'));
    const own = publicV4(this.own.candidates());
    if (!server || !own) return null;
    const routes = this.freshSocketRoute([server.ep.address]);
    if (routes === null) return null;
    const mapped = await freshSocketMapping(server, STUN_TIMEOUT_MS, this.stopped.signal, this.openFresh);
    if (!mapped || mapped.address !== own.address || this.freshSocketRoute([server.ep.address]) !== routes) return null;
    return mapped.port;
  }

  /**
   * When the data socket's two mappings agree, asks again from a fresh socket (mapping-check.ts):
   * a symmetric NAT can give both the same port by chance. True when that showed the mapping varies.
   */
  private async secondOpinion(): Promise<boolean> {
    if (!this.own.needsSecondOpinion()) return false;
    const key = this.own.mappingKey();
    const addrs = this.servers.map((s) => s.ep.address);
    const routes = this.freshSocketRoute(addrs);
    if (routes === null) return false;
    const varies = await mappingVariesFromFreshSocket(this.servers, STUN_TIMEOUT_MS, this.stopped.signal, this.openFresh);
    if (varies === null || key !== this.own.mappingKey() || this.freshSocketRoute(addrs) !== routes) return false;
    this.own.noteSecondOpinion(key, varies);
    if (!varies) return false;
    this.log.info({ component: 'stun', mapping: key }, "NAT mapping varies by destination: a second socket's mappings differ (the data socket's two agreed by chance)");
    return true;
  }
}
