// meshd-wireguard: meshd as a userspace WireGuard for stock tools, with wireguard-go's command line
// (`wg-quick` runs `$WG_QUICK_USERSPACE_IMPLEMENTATION IFACE` and does the rest with wg(8) and ip(8)):
//   meshd-wireguard [-f|--foreground] IFACE    creates IFACE and its UAPI socket; without -f (or
//                                              WG_PROCESS_FOREGROUND=1) returns once both exist,
//                                              the daemon running on in the background
//   meshd-wireguard --version
// LOG_LEVEL=verbose|error|silent as wireguard-go reads it (default error). It is the same daemon as
// `meshd up` (src/daemon/daemon.ts) with an empty config, in its UAPI-only mode.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../log.js';
import { generatePrivateKey } from '../crypto/keys.js';
import { defaultInterface, type MeshConfig } from '../config/config.js';
import { uapiSocketPath } from '../uapi/server.js';
import { packageVersion } from '../package-root.js';

const IFACE_NAME = /^[a-zA-Z0-9_=+.-]{1,15}$/;
/** wireguard-go's default MTU for a new interface (wg-quick sets its own afterwards). */
export const WIREGUARD_DEFAULT_MTU = 1420;
/** How long the parent waits for the interface and the UAPI socket. */
const READY_TIMEOUT_MS = 15_000;

/** An empty config: no key, no port, no peers, no addresses; nothing of meshd's own. */
export function emptyConfig(iface: string): MeshConfig {
  return {
    file: '',
    interfaceName: iface,
    iface: {
      ...defaultInterface(),
      // A stand-in: the device counts as keyless (no handshakes) until the UAPI sets a key.
      privateKey: generatePrivateKey((n) => new Uint8Array(randomBytes(n))),
      mtu: WIREGUARD_DEFAULT_MTU,
      table: 'off',
      splitDns: false,
    },
    peers: [],
    ignored: [],
  };
}

/** wireguard-go's LOG_LEVEL names as pino levels. */
export function logLevelFrom(v: string | undefined): string {
  switch ((v ?? '').toLowerCase()) {
    case 'verbose':
    case 'debug':
      return 'debug';
    case 'silent':
      return 'silent';
    default:
      return 'error';
  }
}

function usage(): never {
  process.stderr.write('Usage: meshd-wireguard [-f/--foreground] INTERFACE-NAME\n');
  process.exit(1);
}

export async function wireguardMain(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
    process.stdout.write(`meshd-wireguard v${packageVersion()} (the meshd daemon in its userspace-WireGuard mode)\n`);
    return;
  }
  let foreground = process.env.WG_PROCESS_FOREGROUND === '1';
  const rest = args.filter((a) => {
    if (a === '-f' || a === '--foreground') {
      foreground = true;
      return false;
    }
    return true;
  });
  if (rest.length !== 1 || rest[0].startsWith('-')) usage();
  const iface = rest[0];
  if (!IFACE_NAME.test(iface)) {
    process.stderr.write(`meshd-wireguard: "${iface}" is not an interface name (1–15 characters of [a-zA-Z0-9_=+.-])\n`);
    process.exit(1);
  }
  if (foreground) return runForeground(iface);
  return daemonize(argv, iface);
}

async function runForeground(iface: string): Promise<void> {
  const log = createLogger(logLevelFrom(process.env.LOG_LEVEL));
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({ config: emptyConfig(iface), log, wireguard: true });
  } catch (err) {
    process.stderr.write(`meshd-wireguard: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const stop = (why: string) => void daemon.stop(why);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => undefined); // no config file to reload: everything comes over the UAPI
  process.on('uncaughtException', (err) => {
    log.fatal({ component: 'daemon', err }, 'unexpected error; shutting down');
    void daemon.stop('crash').finally(() => process.exit(2));
  });
  await daemon.done;
  process.exit(0);
}

/**
 * Starts the same command in the foreground as a detached child and returns once the interface and
 * its UAPI socket exist (the next command of a script finds both), or fails with the child's words.
 */
async function daemonize(argv: string[], iface: string): Promise<void> {
  const errFile = join(tmpdir(), `meshd-wireguard-${iface}-${process.pid}.log`);
  const fd = openSync(errFile, 'w', 0o600);
  const child = spawn(process.execPath, [...process.execArgv, argv[1], iface], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, WG_PROCESS_FOREGROUND: '1' },
  });
  closeSync(fd);
  let exited: number | null = null;
  child.on('exit', (code, signal) => (exited = code ?? (signal ? 128 : 1)));
  const sock = uapiSocketPath(iface);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  try {
    while (exited === null && Date.now() < deadline) {
      if (existsSync(`/sys/class/net/${iface}`) && existsSync(sock)) {
        child.unref();
        return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    const said = readFileSync(errFile, 'utf8').trim();
    if (exited === null) child.kill('SIGTERM');
    process.stderr.write(said ? `${said}\n` : `meshd-wireguard: ${iface} did not come up within ${READY_TIMEOUT_MS / 1000} s\n`);
    process.exit(1);
  } finally {
    rmSync(errFile, { force: true }); // the daemon keeps its descriptor: errors after start are its log's
  }
}
