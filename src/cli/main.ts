// The meshd command line: up, down, status, genkey, pubkey, genpsk.
// Exit codes: 0 ok, 1 user error (usage, config), 2 runtime failure.
import { existsSync, readdirSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { loadConfig } from '../config/config.js';
import { controlRequest, CONTROL_DIR } from '../control/control.js';
import { Daemon } from '../daemon/daemon.js';
import { formatStatus, type DaemonStatus } from '../daemon/status.js';
import type { NetcheckReport, PongReply } from '../daemon/daemon.js';
import { ConfigError, MeshdError, UsageError } from '../errors.js';
import { createLogger } from '../log.js';
import { installSystemd } from './systemd.js';
import { genkey, genpsk, pubkey } from './keys.js';
import { demo } from '../demo/demo.js';
import { peerAdd, peerList, peerRemove } from './peer.js';
import { invite, join } from './invite.js';
import { interfaceNameFromPath } from '../config/config.js';
import { formatMeshList, meshAdd, meshInit, meshList, meshPolicy, meshPolicyShow, meshRemove, meshSetGroups, type PublishResult } from './mesh.js';

function published(p: PublishResult): string {
  if (p.via === 'daemon') return 'the running daemon applies it and publishes it to its relays';
  if (p.via === 'relays') return `published to ${p.relays.join(', ')} (no daemon runs here)`;
  return `NOT published: ${p.error ?? 'unknown'}; it goes out when the daemon starts`;
}

const CONFIG_DIRS = ['/etc/meshd', '/etc/wireguard'];

/** A bare interface name means /etc/meshd/NAME.conf (then /etc/wireguard/NAME.conf), as wg-quick does. */
export function findConfig(arg: string): string {
  if (arg.includes('/') || arg.endsWith('.conf')) return arg;
  for (const d of CONFIG_DIRS) {
    const p = `${d}/${arg}.conf`;
    if (existsSync(p)) return p;
  }
  throw new UsageError(`no config for "${arg}" in ${CONFIG_DIRS.join(' or ')} (give a path to a .conf file)`);
}

/** The interface to talk to: the one given, or the only daemon running. */
export function pickInterface(arg: string | undefined): string {
  if (arg) return arg;
  const running = existsSync(CONTROL_DIR) ? readdirSync(CONTROL_DIR).filter((f) => f.endsWith('.sock')).map((f) => f.slice(0, -5)) : [];
  if (running.length === 1) return running[0];
  if (running.length === 0) throw new MeshdError('ENODAEMON', 'no meshd daemon is running');
  throw new UsageError(`several interfaces run (${running.join(', ')}): name one`);
}

async function up(configArg: string, opts: { interface?: string; logLevel?: string }): Promise<void> {
  const file = findConfig(configArg);
  const config = loadConfig(file, opts.interface);
  const log = createLogger(opts.logLevel);
  const daemon = await Daemon.start({ config, log });
  const stop = (sig: string) => void daemon.stop(sig);
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    daemon.reload().catch((err: Error) => log.error({ component: 'daemon', err: err.message }, 'reload failed; the running configuration is unchanged'));
  });
  process.on('uncaughtException', (err) => {
    log.fatal({ component: 'daemon', err }, 'unexpected error; shutting down');
    void daemon.stop('crash').finally(() => process.exit(2));
  });
  await daemon.done;
  process.exit(0);
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('meshd')
    .description('Peer-to-peer mesh VPN, WireGuard-compatible')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command('up')
    .argument('<config>', 'config file, or an interface name (looked up in /etc/meshd, /etc/wireguard)')
    .option('-i, --interface <name>', 'interface name (default: the config file name without .conf)')
    .option('--log-level <level>', 'trace, debug, info, warn, error', process.env.MESHD_LOG_LEVEL ?? 'info')
    .description('run the daemon in the foreground')
    .action(up);

  program
    .command('down')
    .argument('[iface]', 'interface (default: the only one running)')
    .description('stop a running daemon')
    .action(async (iface?: string) => {
      const name = pickInterface(iface);
      await controlRequest(name, { cmd: 'down' });
      // Wait until the daemon has released its socket (it removes it last).
      for (let i = 0; i < 100 && existsSync(`${CONTROL_DIR}/${name}.sock`); i++) await new Promise((r) => setTimeout(r, 50));
    });

  program
    .command('status')
    .argument('[iface]', 'interface (default: the only one running)')
    .option('--json', 'machine-readable output')
    .description('show peers, paths, handshakes and transfer')
    .action(async (iface: string | undefined, opts: { json?: boolean }) => {
      const s = (await controlRequest(pickInterface(iface), { cmd: 'status' })) as DaemonStatus;
      process.stdout.write(opts.json ? JSON.stringify(s, null, 2) + '\n' : formatStatus(s, Date.now()) + '\n');
    });

  program
    .command('ping')
    .argument('<peer>', 'peer name, mesh IP or public key')
    .option('-i, --interface <name>', 'interface (default: the only one running)')
    .option('-c, --count <n>', 'pings to send at most', (v) => positiveInt(v, '--count'), 10)
    .option('--until-direct', 'stop at the first reply over a direct path')
    .option('--json', 'one JSON object per reply')
    .description('disco ping over the current paths, like tailscale ping')
    .action(async (q: string, o: { interface?: string; count: number; untilDirect?: boolean; json?: boolean }) => {
      const iface = pickInterface(o.interface);
      let replies = 0;
      let direct = false;
      for (let i = 0; i < o.count && !(o.untilDirect && direct); i++) {
        const started = Date.now();
        const r = (await controlRequest(iface, { cmd: 'ping', peer: q }, 10_000)) as { peer: string; replies: PongReply[] };
        if (r.replies.length === 0) process.stdout.write(o.json ? JSON.stringify({ peer: r.peer, reply: null }) + '\n' : `no reply from ${r.peer}\n`);
        for (const p of r.replies.sort((a, b) => a.rttMs - b.rttMs)) {
          process.stdout.write(o.json ? JSON.stringify({ peer: r.peer, ...p }) + '\n' : `pong from ${r.peer} via ${p.via} in ${p.rttMs.toFixed(0)}ms\n`);
          replies++;
          if (p.direct) direct = true;
        }
        const wait = 1000 - (Date.now() - started);
        if (wait > 0 && i + 1 < o.count && !(o.untilDirect && direct)) await new Promise((res) => setTimeout(res, wait));
      }
      if (o.untilDirect && !direct) {
        process.stderr.write(`meshd: no direct path to ${q} after ${o.count} pings\n`);
        process.exit(2);
      }
      if (replies === 0) process.exit(2);
    });

  program
    .command('netcheck')
    .option('-i, --interface <name>', 'interface (default: the only one running)')
    .option('--json', 'machine-readable output')
    .description('UDP reachability, public endpoints from STUN, NAT mapping behaviour, relay latency')
    .action(async (o: { interface?: string; json?: boolean }) => {
      const r = (await controlRequest(pickInterface(o.interface), { cmd: 'netcheck' }, 10_000)) as NetcheckReport;
      if (o.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        return;
      }
      const lines = [`UDP: ${r.udp ? 'yes' : r.stun.length ? 'no (no STUN server answered)' : 'unknown (no STUN server configured)'}`];
      for (const s of r.stun) lines.push(`STUN ${s.server}: ${s.mapped ? `${s.mapped} (${s.rttMs} ms)` : s.error}`);
      lines.push(`NAT mapping varies by destination: ${r.natMappingVariesByDestination === null ? 'unknown (needs two STUN servers)' : r.natMappingVariesByDestination ? `yes${r.natPortsInOrder ? ' (ports handed out in order)' : ''}` : 'no'}`);
      for (const rl of r.relays) lines.push(`relay ${rl.url}: ${rl.state}${rl.latencyMs !== null ? `, ${rl.latencyMs} ms` : ''}`);
      process.stdout.write(lines.join('\n') + '\n');
    });

  const peer = program.command('peer').description('manage the peers in a config file');
  peer
    .command('add')
    .argument('<config>', 'config file, or an interface name')
    .requiredOption('--public-key <key>', "the new peer's public key (base64)")
    .option('--name <name>', 'a short name (letters, digits, _ . -)')
    .option('--allowed-ips <cidrs>', 'comma-separated prefixes (default: the next free mesh address)')
    .option('--endpoint <host:port>', 'where to reach the peer')
    .option('--persistent-keepalive <seconds>', 'keepalive interval')
    .option('--preshared-key-file <file>', 'a file holding a base64 preshared key')
    .option('--json', 'machine-readable output')
    .description('add a peer to the config file (comments and formatting are kept); apply with meshd reload')
    .action(async (c: string, o: { publicKey: string; name?: string; allowedIps?: string; endpoint?: string; persistentKeepalive?: string; presharedKeyFile?: string; json?: boolean }) => {
      const file = findConfig(c);
      const r = await peerAdd(file, o);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`added peer ${r.name ?? r.publicKey} with AllowedIPs ${r.allowedIps.join(', ')} to ${file}\napply it with: meshd reload ${interfaceNameFromPath(file)}\n`);
    });
  peer
    .command('remove')
    .argument('<config>', 'config file, or an interface name')
    .argument('<peer>', 'the peer\'s name or public key')
    .option('--json', 'machine-readable output')
    .description('remove a peer from the config file; apply with meshd reload')
    .action(async (c: string, who: string, o: { json?: boolean }) => {
      const file = findConfig(c);
      const r = await peerRemove(file, who);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`removed peer ${r.name ?? r.publicKey} from ${file}\napply it with: meshd reload ${interfaceNameFromPath(file)}\n`);
    });
  peer
    .command('list')
    .argument('<config>', 'config file, or an interface name')
    .option('--json', 'machine-readable output')
    .description('list the peers, with their live path when the daemon runs')
    .action(async (c: string, o: { json?: boolean }) => {
      const r = await peerList(findConfig(c));
      if (o.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        return;
      }
      for (const p of r.peers) {
        if (p.pending) {
          process.stdout.write(`${(p.name ?? '-').padEnd(12)} (invited, not joined yet; invitation ${p.pending.invitation} expires ${new Date(p.pending.expiresAt).toISOString()})  ${p.allowedIps.join(',')}\n`);
          continue;
        }
        const path = p.path ? (p.path.kind === 'direct' ? `direct ${p.path.endpoint}` : p.path.kind === 'relay' ? `relay ${p.path.relay}` : 'none') : '-';
        const hs = p.latestHandshake ? `${Math.round((Date.now() - p.latestHandshake) / 1000)}s ago` : '-';
        process.stdout.write(`${(p.name ?? '-').padEnd(12)} ${p.publicKey}  ${p.allowedIps.join(',').padEnd(28)} ${(p.endpoint ?? '-').padEnd(22)} ${r.running ? `${path}  handshake ${hs}` : ''}\n`);
      }
    });

  const mesh = program.command('mesh').description('a whole mesh from its admin host: one signed roster that every host follows');
  mesh
    .command('init')
    .argument('<config>', 'config file of this host (the admin host), or an interface name')
    .option('--domain <domain>', 'DNS domain of the mesh\'s names', 'mesh')
    .option('--prefix <cidrs>', 'address prefixes of the mesh (default: those of this host\'s Address, else 100.64.0.0/10)')
    .option('--name <name>', "this host's member name (default: the hostname)")
    .option('--endpoint <host:port>', 'where members can reach this host directly, if it has a fixed public address')
    .option('--json', 'machine-readable output')
    .description('make this host the admin host of a new mesh: admin key (0600), MeshKey in the config, roster serial 1')
    .action(async (c: string, o: { domain: string; prefix?: string; name?: string; endpoint?: string; json?: boolean }) => {
      const file = findConfig(c);
      const r = await meshInit(file, o);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else
        process.stdout.write(
          `mesh created: MeshKey = ${r.meshKey}\n` +
            `admin key: ${r.adminKeyFile} (0600; whoever holds it controls the mesh: back it up offline)\n` +
            `roster serial ${r.serial}: ${r.name} ${r.addresses.join(', ')}\n` +
            `run the relay with: meshd-relay --mesh-key ${r.meshKey} --state-dir /var/lib/meshd-relay …\n`,
        );
    });
  mesh
    .command('add')
    .argument('<config>', "the admin host's config file, or an interface name")
    .requiredOption('--name <name>', 'member name (a DNS label)')
    .requiredOption('--public-key <key>', "the host's public key (base64)")
    .option('--groups <list>', 'comma-separated groups')
    .option('--address <ips>', 'its mesh address(es) (default: the next free one of each prefix)')
    .option('--expires <duration>', 'membership ends after this long (e.g. 30d)')
    .option('--endpoint <host:port>', 'where members can reach it directly, if it has a fixed public address')
    .option('--json', 'machine-readable output')
    .description('add a member to the roster, sign it, and publish it')
    .action(async (c: string, o: { name: string; publicKey: string; groups?: string; address?: string; expires?: string; endpoint?: string; json?: boolean }) => {
      const r = await meshAdd(findConfig(c), o);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`added ${r.name} (${r.addresses.join(', ')}) in roster serial ${r.serial}; ${published(r.published)}\n`);
      if (r.published.via === 'none') process.exitCode = 2;
    });
  mesh
    .command('remove')
    .argument('<config>', "the admin host's config file, or an interface name")
    .argument('<member>', 'member name or public key')
    .option('--json', 'machine-readable output')
    .description('remove a member from the roster, sign it, and publish it: every host and relay drops it')
    .action(async (c: string, who: string, o: { json?: boolean }) => {
      const r = await meshRemove(findConfig(c), who);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`removed ${r.name} in roster serial ${r.serial}; ${published(r.published)}\n`);
      if (r.warning && !o.json) process.stderr.write(`meshd: warning: ${r.warning}\n`);
      if (r.published.via === 'none') process.exitCode = 2;
    });
  mesh
    .command('set')
    .argument('<config>', "the admin host's config file, or an interface name")
    .argument('<member>', 'member name or public key')
    .requiredOption('--groups <list>', 'the member\'s groups, comma-separated (replaces its groups; "" for none)')
    .option('--json', 'machine-readable output')
    .description("change a member's groups, sign the roster, and publish it")
    .action(async (c: string, who: string, o: { groups: string; json?: boolean }) => {
      const r = await meshSetGroups(findConfig(c), who, o.groups);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`${r.name} is in ${r.groups.length ? `groups ${r.groups.join(', ')}` : 'no group'} in roster serial ${r.serial}; ${published(r.published)}\n`);
      if (r.warning && !o.json) process.stderr.write(`meshd: warning: ${r.warning}\n`);
      if (r.published.via === 'none') process.exitCode = 2;
    });
  mesh
    .command('policy')
    .argument('<config>', "the admin host's config file, or an interface name")
    .argument('[file]', 'a JSON policy: {"rules": [{"from": [...], "to": [...], "ports": [...]}]} (none: show the one in force)')
    .option('--clear', 'remove every rule: every member reaches every member again')
    .option('--json', 'machine-readable output')
    .description('set the access policy the roster carries (signed and published with it; every host enforces it)')
    .action(async (c: string, f: string | undefined, o: { clear?: boolean; json?: boolean }) => {
      const file = findConfig(c);
      if (f && o.clear) throw new UsageError('mesh policy: give a policy file or --clear, not both');
      if (!f && !o.clear) {
        process.stdout.write(JSON.stringify(meshPolicyShow(file), null, 2) + '\n');
        return;
      }
      const r = await meshPolicy(file, f ?? null);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`${r.rules ? `access policy of ${r.rules} rules` : 'no access policy (everyone reaches everyone)'} in roster serial ${r.serial}; ${published(r.published)}\n`);
      if (r.published.via === 'none') process.exitCode = 2;
    });
  mesh
    .command('list')
    .argument('[iface]', 'interface, or a config file (default: the only daemon running)')
    .option('--json', 'machine-readable output')
    .description('the roster this host runs: serial, members, and each one\'s path and latest handshake')
    .action(async (arg: string | undefined, o: { json?: boolean }) => {
      let cfg = null;
      let iface: string;
      if (arg && (arg.includes('/') || arg.endsWith('.conf'))) {
        cfg = loadConfig(arg);
        iface = cfg.interfaceName;
      } else {
        iface = pickInterface(arg);
      }
      const r = await meshList(cfg, iface);
      process.stdout.write(o.json ? JSON.stringify(r, null, 2) + '\n' : formatMeshList(r, Date.now()) + '\n');
    });

  program
    .command('reload')
    .argument('[iface]', 'interface (default: the only one running)')
    .option('--json', 'machine-readable output')
    .description('re-read the config file and apply only what changed (also: SIGHUP)')
    .action(async (iface: string | undefined, o: { json?: boolean }) => {
      const r = (await controlRequest(pickInterface(iface), { cmd: 'reload' }, 30_000)) as Record<string, unknown>;
      if (o.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
        return;
      }
      const list = (k: string) => ((r[k] as string[]).length ? (r[k] as string[]).join(', ') : 'none');
      process.stdout.write(`added: ${list('added')}\nremoved: ${list('removed')}\nchanged: ${list('changed')}\n`);
      if (r.privateKeyChanged) process.stdout.write('private key changed: all sessions restart\n');
      if ((r.restartNeeded as string[]).length) process.stdout.write(`not applied until restart: ${list('restartNeeded')}\n`);
    });

  program
    .command('invite')
    .argument('<config>', 'config file, or an interface name')
    .requiredOption('--name <name>', 'name of the new host')
    .option('--public-key <key>', 'the new host made its own key: invite that key')
    .option('--expires <duration>', 'how long the invitation is valid (e.g. 24h, 30m)', '24h')
    .option('--endpoint <host:port>', "this host's public endpoint, if it has one")
    .option('--inviter-name <name>', 'the name the new host gives this host (default: the hostname)')
    .option('--groups <list>', 'in a mesh: the new member\'s groups (comma-separated)')
    .option('--json', 'machine-readable output')
    .description('prepare a new host: reserve its address and print a one-time invitation line')
    .action(async (c: string, o: { name: string; publicKey?: string; expires: string; endpoint?: string; inviterName?: string; groups?: string; json?: boolean }) => {
      const file = findConfig(c);
      const r = await invite(file, o);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        process.stdout.write(`${r.invitation}\n`);
        process.stderr.write(
          `invitation ${r.id} for ${o.name} (${r.addresses.join(', ')}), valid once until ${new Date(r.expiresAt).toISOString()}.\n` +
            `On the new host: meshd join '<the line above>'. Keep the line secret${r.invitation.includes('enrollmentKey":null') ? '' : ': it holds a one-time enrollment key'}.\n`,
        );
      }
    });

  program
    .command('join')
    .argument('<invitation>', 'the line meshd invite printed')
    .option('-i, --interface <name>', 'interface (and config file) name', 'meshd0')
    .option('--config-dir <dir>', 'where to write the config', '/etc/meshd')
    .option('--private-key-file <file>', 'this host\'s own key, when the invitation was made for it (--public-key)')
    .option('--force', 'overwrite an existing config file')
    .option('--json', 'machine-readable output')
    .description('redeem an invitation with the inviting host and write this host\'s config (mode 0600)')
    .action(async (line: string, o: { interface: string; configDir: string; privateKeyFile?: string; force?: boolean; json?: boolean }) => {
      const r = await join(line, o);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        const roster = r.roster === undefined ? '' : r.roster ? `roster serial ${r.roster.serial} (${r.roster.members} members) cached\n` : 'the roster could not be fetched yet: the daemon fetches it from the relay when it starts\n';
        process.stdout.write(`joined as ${r.addresses.join(', ')}; wrote ${r.file}\n${roster}start it with: meshd up ${r.file}\n`);
      }
    });

  program
    .command('demo')
    .description('build a small internet in network namespaces (root) and show meshd punching through two NATs')
    .action(demo);

  program
    .command('genkey')
    .option('-o, --out <file>', 'write to FILE (created with mode 0600) instead of stdout')
    .description('print a new private key (base64), like wg genkey')
    .action((o: { out?: string }) => genkey(o.out));
  program.command('genpsk').option('-o, --out <file>', 'write to FILE (mode 0600)').description('print a new preshared key').action((o: { out?: string }) => genpsk(o.out));
  program.command('pubkey').description('read a private key on stdin, print its public key').action(pubkey);
  program
    .command('install-systemd')
    .option('--unit-dir <dir>', 'where to write the units', '/etc/systemd/system')
    .option('--no-reload', 'do not run systemctl daemon-reload')
    .description('install meshd@.service and meshd-relay.service for this install (docs/operations.md)')
    .action((o: { unitDir: string; reload: boolean }) => installSystemd(o));

  try {
    await program.parseAsync(argv);
  } catch (err) {
    process.exit(report(err));
  }
}

function positiveInt(v: string, what: string): number {
  if (!/^[1-9]\d*$/.test(v)) throw new UsageError(`${what}: "${v}" is not a positive whole number`);
  return Number(v);
}

/** Prints one line for an error and returns the exit code. */
export function report(err: unknown): number {
  if (err instanceof CommanderError) {
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.exitCode === 0) return 0;
    return 1; // commander already printed the message
  }
  if (err instanceof ConfigError || err instanceof UsageError) {
    process.stderr.write(`meshd: ${err.message}\n`);
    return 1;
  }
  if (err instanceof MeshdError) {
    process.stderr.write(`meshd: ${err.message}\n`);
    return 2;
  }
  process.stderr.write(`meshd: ${(err as Error).stack ?? String(err)}\n`);
  return 2;
}
