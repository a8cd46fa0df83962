// The meshd-relay command: WebSocket relay + STUN, /healthz and /metrics.
// Exit codes: 0 ok, 1 bad usage or config, 2 runtime failure.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Command, InvalidArgumentError } from 'commander';
import { createLogger } from '../src/log.js';
import { generatePrivateKey, keyToBase64, parsePrivateKey, type NodePrivateKey } from '../src/crypto/keys.js';
import { parseHostPort, type HostPort } from '../src/config/config.js';
import { ConfigError, UsageError } from '../src/errors.js';
import { report } from '../src/cli/main.js';
import { DEFAULT_LIMITS, RelayServer, type RelayLimits } from './server.js';
import { loadAllowList } from './allow-list.js';
import { startStun } from './stun.js';
import { MeshDirectory } from './mesh.js';
import { startRelayHeapTrim } from './heap-trim.js';
import { parseMeshPublicKey, type MeshPublicKey } from '../src/crypto/ed25519.js';

function meshKey(v: string, prev: MeshPublicKey[] = []): MeshPublicKey[] {
  const k = parseMeshPublicKey(v);
  if (!k) throw new InvalidArgumentError(`"${v}" is not a base64 mesh key (the MeshKey = of a member's config)`);
  return [...prev, k];
}

function hostPort(v: string, prev: HostPort[] = []): HostPort[] {
  const m = /^:(\d{1,5})$/.exec(v);
  const hp = m ? { host: '', port: Number(m[1]) } : parseHostPort(v);
  if (!hp) throw new InvalidArgumentError(`"${v}" is not HOST:PORT (or :PORT for all addresses)`);
  return [...prev, hp];
}

function int(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`"${v}" is not a whole number`);
  return Number(v);
}

function loadOrCreateKey(file: string | undefined): NodePrivateKey {
  if (!file) return generatePrivateKey((n) => new Uint8Array(randomBytes(n)));
  if (!existsSync(file)) {
    const k = generatePrivateKey((n) => new Uint8Array(randomBytes(n)));
    writeFileSync(file, keyToBase64(k) + '\n', { mode: 0o600 });
    return k;
  }
  try {
    return parsePrivateKey(readFileSync(file, 'utf8'));
  } catch {
    throw new ConfigError(`${file}: not a base64 private key`);
  }
}

interface Opts {
  listen?: HostPort[];
  tlsCert?: string;
  tlsKey?: string;
  stun?: HostPort[];
  noStun?: boolean;
  stunEnabled?: boolean;
  allowKeys?: string;
  keyFile?: string;
  maxFrameBytes: number;
  queueBytes: number;
  clientRate: number;
  clientBurst: number;
  maxClients: number;
  loginTimeoutMs: number;
  keepaliveMs: number;
  meshKey?: MeshPublicKey[];
  stateDir?: string;
  maxRosterBytes: number;
  logLevel: string;
}

async function run(o: Opts): Promise<void> {
  if (!!o.tlsCert !== !!o.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
  const read = (f: string, what: string) => {
    try {
      return readFileSync(f);
    } catch (err) {
      throw new ConfigError(`${f}: cannot read ${what}: ${(err as NodeJS.ErrnoException).code}`);
    }
  };
  const tls = o.tlsCert && o.tlsKey ? { cert: read(o.tlsCert, 'certificate'), key: read(o.tlsKey, 'key') } : undefined;
  const log = createLogger(o.logLevel);
  let allow = o.allowKeys ? loadAllowList(o.allowKeys) : null;
  const limits: RelayLimits = {
    ...DEFAULT_LIMITS,
    maxFrameBytes: o.maxFrameBytes,
    queueBytes: o.queueBytes,
    clientBytesPerSecond: o.clientRate,
    clientBurstBytes: o.clientBurst,
    maxClients: o.maxClients,
    loginTimeoutMs: o.loginTimeoutMs,
    keepaliveMs: o.keepaliveMs,
    maxRosterBytes: o.maxRosterBytes,
  };
  if (o.stateDir && !o.meshKey) throw new UsageError('--state-dir holds rosters: it needs --mesh-key');
  let mesh: MeshDirectory | null = null;
  if (o.meshKey) {
    if (!o.stateDir) log.warn({ component: 'relay' }, 'no --state-dir: rosters are kept in memory only and lost on restart');
    mesh = new MeshDirectory(o.meshKey, o.stateDir ?? null);
    try {
      mesh.load((msg, fields) => log.warn({ component: 'relay', ...fields }, msg));
    } catch (err) {
      throw new ConfigError(`--state-dir ${o.stateDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const listen = o.listen ?? [{ host: '', port: tls ? 443 : 80 }];
  const server = new RelayServer({ privateKey: loadOrCreateKey(o.keyFile), listen, tls, limits, allowKeys: () => allow, mesh, log });
  const ports = await server.start();
  const stuns = [];
  if (o.stunEnabled !== false) for (const s of o.stun ?? [{ host: '', port: 3478 }]) stuns.push(await startStun(s, server.metrics));
  log.info(
    { component: 'relay', publicKey: keyToBase64(server.publicKey), listen: listen.map((l, i) => `${l.host || '*'}:${ports[i]}`), tls: !!tls, stun: stuns.map((s) => s.port), allowList: allow ? allow.size : null, meshes: mesh ? mesh.meshKeys.map((k) => ({ serial: mesh!.serial(k) })).length : 0 },
    'meshd-relay up',
  );
  const heapTrim = startRelayHeapTrim(server.metrics, log);
  process.on('SIGHUP', () => {
    if (!o.allowKeys) return;
    try {
      allow = loadAllowList(o.allowKeys);
      log.info({ component: 'relay', keys: allow.size }, 'allow-list reloaded');
    } catch (err) {
      log.error({ component: 'relay', err }, 'allow-list reload failed; keeping the previous list');
    }
  });
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info({ component: 'relay', reason: sig }, 'shutting down');
      resolve();
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  heapTrim?.stop();
  for (const s of stuns) s.close();
  await server.stop();
  process.exit(0);
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .name('meshd-relay')
    .description('Self-hosted, end-to-end-blind relay for meshd: WebSocket packet relay and STUN server')
    .option('--listen <host:port>', 'address to serve on, repeatable ([::]:443 with TLS, :80 without)', hostPort)
    .option('--tls-cert <file>', 'serve TLS with this certificate (PEM)')
    .option('--tls-key <file>', 'private key for --tls-cert (PEM)')
    .option('--stun <host:port>', 'STUN server address, repeatable (default :3478)', hostPort)
    .option('--no-stun', 'do not run the STUN server')
    .option('--allow-keys <file>', 'admit only these base64 public keys (one per line; reloaded on SIGHUP)')
    .option('--key-file <file>', "the relay's own private key (created 0600 if missing; default: a fresh key each start)")
    .option('--max-frame-bytes <n>', 'largest frame accepted', int, DEFAULT_LIMITS.maxFrameBytes)
    .option('--queue-bytes <n>', 'bytes queued per destination before packets to it are dropped', int, DEFAULT_LIMITS.queueBytes)
    .option('--client-rate <bytes/s>', 'per-client sending rate (0 = unlimited)', int, DEFAULT_LIMITS.clientBytesPerSecond)
    .option('--client-burst <bytes>', 'per-client burst', int, DEFAULT_LIMITS.clientBurstBytes)
    .option('--max-clients <n>', 'connections accepted at once', int, DEFAULT_LIMITS.maxClients)
    .option('--login-timeout-ms <ms>', 'time a connection has to log in', int, DEFAULT_LIMITS.loginTimeoutMs)
    .option('--keepalive-ms <ms>', 'server keepalive interval', int, DEFAULT_LIMITS.keepaliveMs)
    .option('--mesh-key <key>', "carry this mesh's rosters and admit only its members (base64, repeatable)", meshKey)
    .option('--state-dir <dir>', 'where the newest roster of each mesh is kept across restarts')
    .option('--max-roster-bytes <n>', 'largest roster accepted from a client', int, DEFAULT_LIMITS.maxRosterBytes)
    .option('--log-level <level>', 'trace, debug, info, warn, error', 'info')
    .exitOverride()
    .action((o: Opts & { stun?: HostPort[] | false }) => run({ ...o, stunEnabled: o.stun !== false, stun: o.stun === false ? undefined : o.stun }));
  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exit(report(err));
  }
}
