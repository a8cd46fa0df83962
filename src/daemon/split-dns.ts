// Split DNS on the host (DESIGN.md §10): the mesh's names go to this daemon's name server, every
// other name to the host's resolvers as before. With systemd-resolved, the mesh interface gets the
// server and the routing domain ~DOMAIN (resolvectl dns / domain; undone by resolvectl revert). Else
// resolvconf, when it manages /etc/resolv.conf (other interfaces' records exist): a record with the
// server first and DOMAIN as a search domain; the server answers REFUSED outside the mesh, and the C
// library then asks the next server. Else nothing is touched and `meshd status` says what to do.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';

export type ResolverBackend = 'systemd-resolved' | 'resolvconf' | 'none';

export interface SplitDnsStatus {
  backend: ResolverBackend;
  domain: string | null;
  servers: string[];
  /** Whether the host's resolver has the mesh's names now. */
  applied: boolean;
  /** With no backend: how to point a resolver at the name server. */
  hint: string | null;
  error: string | null;
}

export interface CmdResult {
  ok: boolean;
  missing: boolean;
  stdout: string;
  stderr: string;
}
export type CmdRunner = (cmd: string, args: string[], input?: string) => Promise<CmdResult>;

export const runCmd: CmdRunner = (cmd, args, input) =>
  new Promise((resolve) => {
    const p = execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) =>
      resolve({ ok: !err, missing: (err as NodeJS.ErrnoException | null)?.code === 'ENOENT', stdout: String(stdout), stderr: String(stderr).trim() }),
    );
    p.stdin?.on('error', () => undefined);
    p.stdin?.end(input ?? '');
  });

export interface HostProbe {
  /** systemd-resolved runs (its runtime directory exists). */
  resolvedRunning(): boolean;
  /** Records Debian's resolvconf holds (its runtime directory), for when `resolvconf -l` is not understood. */
  debianResolvconfRecords(): string[];
}

export const hostProbe: HostProbe = {
  resolvedRunning: () => existsSync('/run/systemd/resolve/io.systemd.Resolve') || existsSync('/run/systemd/resolve/stub-resolv.conf'),
  debianResolvconfRecords: () => {
    try {
      return readdirSync('/run/resolvconf/interface');
    } catch {
      return [];
    }
  },
};

export class SplitDns {
  private state: SplitDnsStatus = { backend: 'none', domain: null, servers: [], applied: false, hint: null, error: null };
  private queue: Promise<void> = Promise.resolve();
  /** Set by remove(): nothing is registered after the daemon began to stop. */
  private closed = false;

  constructor(
    private readonly iface: string,
    private readonly run: CmdRunner = runCmd,
    private readonly probe: HostProbe = hostProbe,
  ) {}

  /** The resolvconf record meshd writes (tun.* sorts before the host's own interfaces, as wg-quick's does). */
  get record(): string {
    return `tun.${this.iface}.mesh`;
  }

  /** Gives the host's resolver `domain` → `servers`; a no-op when that is what it has. */
  apply(domain: string, servers: string[]): Promise<void> {
    return this.enqueue(async () => {
      if (this.closed) return;
      if (this.state.applied && this.state.domain === domain && this.state.servers.join() === servers.join()) return;
      if (this.state.applied) await this.undo();
      this.state = { backend: 'none', domain, servers, applied: false, hint: null, error: null };
      if (!servers.length) return;
      const backend = await this.detect();
      this.state.backend = backend;
      if (backend === 'systemd-resolved') {
        const a = await this.run('resolvectl', ['dns', this.iface, ...servers]);
        const b = a.ok ? await this.run('resolvectl', ['domain', this.iface, `~${domain}`]) : a;
        if (!b.ok) this.state.error = `resolvectl: ${b.stderr || 'failed'}`;
        this.state.applied = a.ok; // revert even after a half-done setup
        if (!b.ok) await this.undo();
        return;
      }
      if (backend === 'resolvconf') {
        const server = servers.find((s) => !s.includes(':')) ?? servers[0];
        const text = `nameserver ${server}\nsearch ${domain}\n`;
        let r = await this.run('resolvconf', ['-a', this.record, '-m', '0'], text);
        if (!r.ok && /-m|option/i.test(r.stderr)) r = await this.run('resolvconf', ['-a', this.record], text); // Debian's resolvconf has no metrics
        if (!r.ok) this.state.error = `resolvconf: ${r.stderr || 'failed'}`;
        this.state.applied = r.ok;
        return;
      }
      this.state.hint = `no systemd-resolved, and resolvconf does not manage /etc/resolv.conf here: point the host's resolver at ${servers[0]} for ${domain} (systemd-resolved: resolvectl dns ${this.iface} ${servers[0]}; resolvectl domain ${this.iface} '~${domain}'; dnsmasq: server=/${domain}/${servers[0]})`;
    });
  }

  /** Undoes what apply did (at stop). */
  remove(): Promise<void> {
    this.closed = true;
    return this.enqueue(async () => {
      if (this.state.applied) await this.undo();
      this.state = { ...this.state, applied: false };
    });
  }

  status(): SplitDnsStatus {
    return { ...this.state, servers: [...this.state.servers] };
  }

  private enqueue(f: () => Promise<void>): Promise<void> {
    const run = this.queue.then(f);
    this.queue = run.catch((err: Error) => {
      this.state.error = err.message;
    });
    return this.queue;
  }

  private async undo(): Promise<void> {
    if (this.state.backend === 'systemd-resolved') await this.run('resolvectl', ['revert', this.iface]);
    else if (this.state.backend === 'resolvconf') await this.run('resolvconf', ['-d', this.record, '-f']);
    this.state.applied = false;
  }

  /**
   * systemd-resolved when it runs and resolvectl is there; resolvconf when it manages resolv.conf,
   * i.e. holds records of other interfaces (adding the first record to an unmanaged resolv.conf would
   * replace the host's resolvers with a server that answers only for the mesh); else none.
   */
  private async detect(): Promise<ResolverBackend> {
    if (this.probe.resolvedRunning()) {
      const v = await this.run('resolvectl', ['--version']);
      if (v.ok) return 'systemd-resolved';
    }
    const l = await this.run('resolvconf', ['-l']);
    if (l.missing) return 'none';
    if (l.ok) {
      const others = l.stdout.split(/^# resolv\.conf from /m).slice(1).filter((rec) => !rec.startsWith(`${this.record}\n`) && /^nameserver /m.test(rec));
      return others.length ? 'resolvconf' : 'none';
    }
    return this.probe.debianResolvconfRecords().some((r) => r !== this.record) ? 'resolvconf' : 'none';
  }
}
