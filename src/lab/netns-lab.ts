// A throwaway network lab: network namespaces, veth links, bridges and processes inside them.
// Used by the integration tests, the benchmarks and `meshd demo`. Everything it creates is removed
// at teardown, on exit, and on a signal that ends the process; what a SIGKILLed owner left goes at
// the next lab.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { packageRoot } from '../package-root.js';
import { shebangFlags } from '../ops/systemd.js';
import { processAlive } from '../ops/process-alive.js';
import { socketInUse } from '../control/unix-socket.js';

export const MESHD_BIN = join(packageRoot(), 'bin', 'meshd.js');
export const RELAY_BIN = join(packageRoot(), 'bin', 'meshd-relay.js');

export { shebangFlags };

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why lab tests cannot run here, or null when they can (root, /dev/net/tun, iproute2). */
export function labUnavailable(extraCommands: string[] = []): string | null {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces and TUN devices)';
  if (!existsSync('/dev/net/tun')) return 'needs /dev/net/tun';
  for (const c of ['ip', ...extraCommands]) if (!hasCommand(c)) return `needs ${c} on PATH`;
  return null;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

interface Teardownable {
  teardown(fn: () => unknown): void;
}

const liveLabs = new Set<Lab>();
process.on('exit', () => {
  for (const l of liveLabs) l.destroySync();
});

/**
 * A signal that ends the process (tap's SIGALRM at a file's timeout, ^C, `pkill` of a bench) emits no
 * 'exit': the labs are removed here first, then the signal goes on as it came (tap still reports its
 * timeout). Installed while a lab lives, so a process without one keeps its usual handling.
 */
const ENDING_SIGNALS = ['SIGALRM', 'SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** Live labs that want ending signals handled. */
let signalLabs = 0;
function onEndingSignal(sig: NodeJS.Signals): void {
  for (const l of liveLabs) l.destroySync();
  watchSignals(false);
  process.kill(process.pid, sig);
}
function watchSignals(on: boolean): void {
  for (const s of ENDING_SIGNALS) {
    process.removeListener(s, onEndingSignal);
    if (on) process.on(s, onEndingSignal);
  }
}

/**
 * Per lab namespace, a file naming the process that made it and its lab dir. Not in /etc/netns/NAME:
 * `ip netns exec` bind-mounts every file there over /etc and complains of one /etc lacks.
 */
const OWNERS_DIR = '/var/run/meshd-lab';

/**
 * Removes what labs of processes that are gone left (a SIGKILL runs no handler): their namespaces,
 * with anything still running inside, /etc/netns entries and lab directories.
 */
export function removeDeadLabs(): void {
  let names: string[];
  try {
    names = readdirSync(OWNERS_DIR);
  } catch {
    return;
  }
  for (const ns of names) {
    let owner: { pid: number; dir: string };
    try {
      owner = JSON.parse(readFileSync(join(OWNERS_DIR, ns), 'utf8')) as { pid: number; dir: string };
    } catch {
      continue; // not a lab's, or being made
    }
    if (processAlive(owner.pid)) continue;
    removeNamespace(ns);
    if (owner.dir.startsWith(join(tmpdir(), 'meshd-lab-'))) rmSync(owner.dir, { recursive: true, force: true });
  }
}

/** Kills anything still inside namespace NS (e.g. a daemonised iperf3), deletes it and its /etc/netns entry. */
function removeNamespace(ns: string): void {
  try {
    execFileSync('ip', ['netns', 'pids', ns]).toString().split(/\s+/).filter(Boolean).forEach((pid) => {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    });
    execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  } catch {
    // already gone
  }
  rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  rmSync(join(OWNERS_DIR, ns), { force: true });
}

export class Lab {
  readonly id = 'm' + randomBytes(3).toString('hex');
  readonly dir = mkdtempSync(join(tmpdir(), 'meshd-lab-'));
  private readonly namespaces: string[] = [];
  private readonly procs: ChildProcess[] = [];
  /** Socket files of the daemons started here: a daemon killed at teardown cannot remove its own. */
  private readonly sockets: string[] = [];

  private readonly onSignals: boolean;

  /**
   * `onSignals` false: the caller handles SIGINT and SIGTERM itself and runs the teardown (the demo
   * does, to say what it removed); otherwise an ending signal removes the lab at once.
   */
  constructor(t: Teardownable, { onSignals = true }: { onSignals?: boolean } = {}) {
    if (liveLabs.size === 0) removeDeadLabs();
    this.onSignals = onSignals;
    if (onSignals && ++signalLabs === 1) watchSignals(true);
    liveLabs.add(this);
    t.teardown(() => this.destroy());
  }

  /** Creates namespace `<lab id><suffix>` with lo up and rp_filter off; returns its name. */
  async ns(suffix: string): Promise<string> {
    const name = this.id + suffix;
    await this.run('ip', ['netns', 'add', name]);
    this.namespaces.push(name);
    mkdirSync(OWNERS_DIR, { recursive: true });
    writeFileSync(join(OWNERS_DIR, name), JSON.stringify({ pid: process.pid, dir: this.dir }));
    this.resolverSandbox(name);
    await this.exec(name, 'ip', ['link', 'set', 'lo', 'up']);
    await this.exec(name, 'sysctl', ['-qw', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0']);
    return name;
  }

  /**
   * Each namespace gets its own resolver files (ip netns exec bind-mounts /etc/netns/NAME/* over
   * /etc): an empty resolv.conf, and a resolvconf.conf sending resolvconf's output and state into
   * the lab dir. Nothing run in the lab (a daemon registering names) can touch the host's resolver.
   */
  private resolverSandbox(name: string): void {
    const etc = `/etc/netns/${name}`;
    mkdirSync(etc, { recursive: true });
    const conf = this.resolvConf(name);
    writeFileSync(conf, `# ${name}: lab namespace resolver (src/lab/netns-lab.ts)\n`);
    symlinkSync(conf, join(etc, 'resolv.conf'));
    if (existsSync('/etc/resolvconf.conf')) writeFileSync(join(etc, 'resolvconf.conf'), `resolv_conf=${conf}\nstate_dir=${join(this.dir, `${name}.resolvconf`)}\n`);
  }

  /** The file a namespace sees as /etc/resolv.conf. */
  resolvConf(ns: string): string {
    return join(this.dir, `${ns}.resolv.conf`);
  }

  /** A veth pair between two namespaces with the given CIDR addresses; returns the two device names. */
  async link(nsA: string, addrA: string, nsB: string, addrB: string): Promise<[string, string]> {
    const n = this.procs.length + this.namespaces.length + Math.floor(Math.random() * 1000);
    const a = `${this.id}v${n}a`.slice(-15);
    const b = `${this.id}v${n}b`.slice(-15);
    await this.run('ip', ['link', 'add', a, 'netns', nsA, 'type', 'veth', 'peer', 'name', b, 'netns', nsB]);
    for (const [ns, dev, addr] of [
      [nsA, a, addrA],
      [nsB, b, addrB],
    ]) {
      await this.exec(ns, 'ip', ['addr', 'add', addr, 'dev', dev]);
      await this.exec(ns, 'ip', ['link', 'set', dev, 'up']);
    }
    return [a, b];
  }

  /** A namespace holding a bridge (a LAN switch); returns its name. Attach hosts with `attach`. */
  async switch(suffix: string): Promise<string> {
    const ns = await this.ns(suffix);
    await this.exec(ns, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
    await this.exec(ns, 'ip', ['link', 'set', 'br0', 'up']);
    return ns;
  }

  /** Plugs namespace `ns` into the bridge of `switchNs` with address `addr`; returns the host-side device. */
  async attach(ns: string, addr: string, switchNs: string): Promise<string> {
    const n = Math.floor(Math.random() * 1e6);
    const host = `${this.id}h${n}`.slice(-15);
    const port = `${this.id}p${n}`.slice(-15);
    await this.run('ip', ['link', 'add', host, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', switchNs]);
    await this.exec(switchNs, 'ip', ['link', 'set', port, 'master', 'br0', 'up']);
    await this.exec(ns, 'ip', ['addr', 'add', addr, 'dev', host]);
    await this.exec(ns, 'ip', ['link', 'set', host, 'up']);
    return host;
  }

  /**
   * Runs `meshd-relay ARGS` in a namespace and waits until it says it is up. `extraNodeArgs` go to node
   * after the shebang line's flags and MESHD_NODE_ARGS (which every relay and daemon gets).
   */
  async relay(ns: string, args: string[], extraNodeArgs: readonly string[] = []): Promise<ChildProcess & { log: string[] }> {
    const nodeArgs = [...(process.env.MESHD_NODE_ARGS ?? '').split(' ').filter(Boolean), ...extraNodeArgs];
    const p = this.spawn(ns, process.execPath, [...shebangFlags(RELAY_BIN), ...nodeArgs, RELAY_BIN, ...args], { MESHD_LOG_FORMAT: 'json' });
    for (let i = 0; i < 200; i++) {
      if (p.exitCode !== null) throw new Error(`meshd-relay exited ${p.exitCode}: ${p.log.join('')}`);
      if (p.log.join('').includes('meshd-relay up')) return p;
      await sleep(50);
    }
    throw new Error(`meshd-relay did not come up: ${p.log.join('')}`);
  }

  /** A self-signed EC certificate (PEM) for the given IP addresses, in the lab's directory. */
  async selfSignedCert(ips: string[]): Promise<{ cert: string; key: string }> {
    const cert = join(this.dir, 'relay-cert.pem');
    const key = join(this.dir, 'relay-key.pem');
    const san = ips.map((a) => `IP:${a}`).join(',');
    const r = await this.run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=meshd-lab-relay', '-addext', `subjectAltName=${san}`]);
    if (r.code !== 0) throw new Error(`openssl: ${r.stderr}`);
    return { cert, key };
  }

  /** Writes a file in the lab's directory (mode 0600) and returns its path. */
  file(name: string, content: string): string {
    const p = join(this.dir, name);
    writeFileSync(p, content, { mode: 0o600 });
    return p;
  }

  run(cmd: string, args: string[], timeoutMs = 120_000): Promise<ExecResult> {
    return new Promise((resolve) => {
      execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  }

  exec(ns: string, cmd: string, args: string[], timeoutMs?: number): Promise<ExecResult> {
    return this.run('ip', ['netns', 'exec', ns, cmd, ...args], timeoutMs);
  }

  /** Starts a long-running process in a namespace; it is killed at teardown. Output is kept in `.log`. */
  spawn(ns: string, cmd: string, args: string[], env: Record<string, string> = {}): ChildProcess & { log: string[] } {
    const p = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }) as ChildProcess & { log: string[] };
    p.log = [];
    p.stdout?.on('data', (d: Buffer) => p.log.push(d.toString()));
    p.stderr?.on('data', (d: Buffer) => p.log.push(d.toString()));
    this.procs.push(p);
    return p;
  }

  /**
   * Starts a wireguard-go build (Debian's by default) for IFACE in a namespace and waits until its
   * UAPI socket accepts a connection. wireguard-go binds that socket before it listens on it, and
   * any wg(8) that meets it in between (`wg show`, or `wg show interfaces` in a concurrent test's
   * wg-quick down) gets a refusal and unlinks it; wireguard-go then cannot watch its socket and exits
   * ("Failed to listen on uapi socket"). So the wait connects itself instead of polling with
   * `wg show`, and a start lost that way is tried again (twice at most).
   */
  async wireguardGo(ns: string, iface: string, bin = 'wireguard-go', timeoutMs = 10_000): Promise<ChildProcess & { log: string[] }> {
    mkdirSync('/var/run/wireguard', { recursive: true, mode: 0o755 });
    const sock = `/var/run/wireguard/${iface}.sock`;
    this.sockets.push(sock);
    for (let attempt = 1; ; attempt++) {
      const p = this.spawn(ns, bin, [iface], { WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' });
      const up = await waitFor(async () => p.exitCode !== null || (await socketInUse(sock)), timeoutMs, 20); // connects: a refusal leaves the file alone
      if (up && p.exitCode === null) return p;
      if (p.exitCode !== null) await exited(p); // its last output is in the log
      const lostSocket = /uapi/i.test(p.log.join(''));
      if (!lostSocket || attempt === 3) throw new Error(`${bin} ${iface} did not start: ${p.log.join('')}`);
    }
  }

  /** Runs `meshd up CONFIG` in a namespace and waits until its control socket answers. */
  async meshd(ns: string, config: string, iface: string, env: Record<string, string> = {}): Promise<ChildProcess & { log: string[] }> {
    // MESHD_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the daemons a bench starts.
    // An env of its own (a bench's second meshd pair) sets this one daemon's node flags, and
    // MESHD_BIN there runs another tree's build (an A/B of two commits in one run).
    const nodeArgs = (env.MESHD_NODE_ARGS ?? process.env.MESHD_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const bin = env.MESHD_BIN ?? MESHD_BIN;
    const p = this.spawn(ns, process.execPath, [...shebangFlags(bin), ...nodeArgs, bin, 'up', config, '--interface', iface], { MESHD_LOG_FORMAT: 'json', ...env });
    const sock = `/var/run/meshd/${iface}.sock`;
    this.sockets.push(sock, `/var/run/wireguard/${iface}.sock`);
    for (let i = 0; i < 200; i++) {
      if (p.exitCode !== null) throw new Error(`meshd exited ${p.exitCode}: ${p.log.join('')}`);
      if (existsSync(sock) && p.log.join('').includes('interface up')) return p;
      await sleep(50);
    }
    throw new Error(`meshd did not come up: ${p.log.join('')}`);
  }

  /** Runs the meshd CLI (not inside a namespace: control sockets live in the shared filesystem). */
  cli(args: string[], stdin?: string, timeoutMs = 60_000): Promise<ExecResult> {
    return new Promise((resolve) => {
      const p = spawn(process.execPath, [MESHD_BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      // A CLI that hangs must fail the assertion that waits on it, not run the file into tap's timeout.
      const timer = setTimeout(() => {
        stderr += `\n(lab: meshd ${args.join(' ')} killed after ${timeoutMs} ms)`;
        p.kill('SIGKILL');
      }, timeoutMs);
      p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      p.stdin.end(stdin ?? '');
    });
  }

  async destroy(): Promise<void> {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (this.procs.some((p) => p.exitCode === null && p.signalCode === null) && Date.now() < deadline) await sleep(50);
    this.destroySync();
  }

  destroySync(): void {
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    for (const ns of this.namespaces.splice(0)) removeNamespace(ns);
    for (const f of this.sockets.splice(0)) rmSync(f, { force: true });
    rmSync(this.dir, { recursive: true, force: true });
    if (liveLabs.delete(this) && this.onSignals && --signalLabs === 0) watchSignals(false);
  }
}

/** Resident memory of a process, in MiB. */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Resolves with the exit code once `p` has exited (at once if it already has). */
export function exited(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
  return new Promise((r) => p.once('exit', (code) => r(code)));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns true or the time runs out. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, stepMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return true;
    await sleep(stepMs);
  }
  return false;
}
