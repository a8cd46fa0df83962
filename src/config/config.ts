// meshd's configuration: wg-quick's format (an existing wg0.conf runs unchanged) plus meshd keys.
// Every error names the file, the line and the key, and nothing on the host is touched before it passes.
import { readFileSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { isIP } from 'node:net';
import { ConfigError } from '../errors.js';
import {
  KeyFormatError,
  keyId,
  parsePresharedKey,
  parsePrivateKey,
  parsePublicKey,
  type NodePrivateKey,
  type NodePublicKey,
  type PresharedKey,
} from '../crypto/keys.js';
import { parseCidr, parseInterfaceAddress, type Cidr } from '../tunnel/cidr.js';
import { parseIni, type IniEntry, type IniSection } from './ini.js';
import { validDomain } from './domain.js';
import { parseMeshPublicKey, type MeshPublicKey } from '../crypto/ed25519.js';
import { DEFAULT_BIRTHDAY_LIMITS, MAX_BIRTHDAY_PROBES, MAX_BIRTHDAY_SOCKETS } from '../transport/birthday.js';

const IFACE_NAME = /^[a-zA-Z0-9_=+.-]{1,15}$/;

export interface HostPort {
  host: string;
  port: number;
}

export interface PeerConfig {
  publicKey: NodePublicKey;
  presharedKey: PresharedKey | null;
  allowedIps: Cidr[];
  endpoint: HostPort | null;
  persistentKeepalive: number;
  name: string | undefined;
  line: number;
}

export interface InterfaceConfig {
  privateKey: NodePrivateKey;
  addresses: Cidr[];
  listenPort: number | null;
  /** The TUN MTU as set (MTU =), or null: the underlay's minus 80, with each peer's path MTU probed. */
  mtu: number | null;
  dns: string[];
  /** "auto" (routes in main), "off" (no routes), or a table number or name. */
  table: string;
  preUp: string[];
  postUp: string[];
  preDown: string[];
  postDown: string[];
  /** meshd: relay URLs (ws:// or wss://), in order of preference. */
  relays: string[];
  /** meshd: extra CA certificates (PEM) to trust for wss:// relays, e.g. a self-signed relay's. */
  relayCa: Buffer | null;
  /** meshd: STUN servers (default: port 3478 on each relay's host). */
  stun: HostPort[];
  /** Firewall mark on the data socket's packets (0: off), as wg-quick's FwMark. */
  fwMark: number;
  /** meshd: the mesh this host follows (its signed roster adds the members as peers), or null. */
  meshKey: MeshPublicKey | null;
  /** meshd, static configs: the DNS domain under which [Peer] Name = … resolve (null: no names). */
  domain: string | null;
  /** meshd: whether the names are registered with the host's resolver (systemd-resolved, resolvconf). */
  splitDns: boolean;
  /** meshd: where to serve Prometheus metrics (an IP address and port; null: off, the default). */
  metricsListen: HostPort | null;
  /**
   * meshd: birthday probing towards relayed peers across one symmetric NAT (transport/birthday.ts):
   * 'auto' (the default) or 'off'; and the probe datagrams it may send per hour.
   */
  hardNatProbes: 'auto' | 'off';
  hardNatProbeBudget: number;
  /** Per attempt: the extra sockets of the hard side, the probes of the easy side (bounded). */
  hardNatSockets: number;
  hardNatProbesPerAttempt: number;
}

export interface MeshConfig {
  file: string;
  interfaceName: string;
  iface: InterfaceConfig;
  peers: PeerConfig[];
  /** wg-quick keys that are accepted but have no effect under meshd, for a warning at start. */
  ignored: string[];
}

/** The roster a host last accepted, beside its config (the daemon starts from it when no relay answers). */
export function rosterFile(configFile: string): string {
  return `${configFile}.roster`;
}

/** The mesh's admin key (Ed25519, 0600), beside the admin host's config. */
export function adminKeyFile(configFile: string): string {
  return `${configFile.replace(/\.conf$/, '')}.admin.key`;
}

export function interfaceNameFromPath(file: string): string {
  return basename(file).replace(/\.conf$/, '');
}

/** Parses "host:port", "[v6]:port" or "v4:port"; the host may be a DNS name. */
export function parseHostPort(s: string): HostPort | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:\[\]\s]+):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return null;
  if (m[0].startsWith('[') && isIP(m[1]) !== 6) return null;
  if (!isIP(m[1]) && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(m[1])) return null;
  return { host: m[1], port };
}

function list(v: string): string[] {
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

export function loadConfig(file: string, interfaceName?: string): MeshConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseConfig(text, file, interfaceName);
}

export function parseConfig(text: string, file: string, interfaceName?: string): MeshConfig {
  const name = interfaceName ?? interfaceNameFromPath(file);
  if (!IFACE_NAME.test(name)) {
    throw new ConfigError(`${file}: interface name "${name}" must be 1–15 characters of [a-zA-Z0-9_=+.-]`);
  }
  const sections = parseIni(text, file);
  const ctx = new Ctx(file);
  let iface: InterfaceConfig | null = null;
  const peers: PeerConfig[] = [];
  const ignored: string[] = [];
  const seen = new Map<string, number>();
  for (const s of sections) {
    const kind = s.name.toLowerCase();
    if (kind === 'interface') {
      if (iface) throw new ConfigError(`${file}:${s.line}: a second [Interface] section`);
      iface = parseInterface(s, ctx, ignored);
    } else if (kind === 'peer') {
      const p = parsePeer(s, ctx);
      const id = keyId(p.publicKey);
      const first = seen.get(id);
      if (first !== undefined) {
        throw new ConfigError(`${file}:${p.line}: [Peer] PublicKey: duplicate peer (first defined at line ${first})`);
      }
      seen.set(id, p.line);
      peers.push(p);
    } else {
      throw new ConfigError(`${file}:${s.line}: unknown section [${s.name}] (expected [Interface] or [Peer])`);
    }
  }
  if (!iface) throw new ConfigError(`${file}: no [Interface] section`);
  return { file, interfaceName: name, iface, peers, ignored };
}

class Ctx {
  constructor(readonly file: string) {}
  err(e: IniEntry, section: string, what: string): ConfigError {
    return new ConfigError(`${this.file}:${e.line}: [${section}] ${e.key}: ${what}`);
  }
}

/** An [Interface] with nothing given but its key: what each key's absence means. */
export function defaultInterface(): Omit<InterfaceConfig, 'privateKey'> {
  return {
    addresses: [],
    listenPort: null,
    fwMark: 0,
    mtu: null,
    dns: [],
    table: 'auto',
    preUp: [],
    postUp: [],
    preDown: [],
    postDown: [],
    relays: [],
    relayCa: null,
    stun: [],
    meshKey: null,
    domain: null,
    splitDns: true,
    metricsListen: null,
    hardNatProbes: 'auto',
    hardNatProbeBudget: DEFAULT_BIRTHDAY_LIMITS.hourlyBudget,
    hardNatSockets: DEFAULT_BIRTHDAY_LIMITS.sockets,
    hardNatProbesPerAttempt: DEFAULT_BIRTHDAY_LIMITS.probes,
  };
}

function parseInterface(s: IniSection, ctx: Ctx, ignored: string[]): InterfaceConfig {
  let privateKey: NodePrivateKey | null = null;
  let privateKeyLine = 0;
  const out = defaultInterface();
  for (const e of s.entries) {
    const k = e.key.toLowerCase();
    switch (k) {
      case 'privatekey':
      case 'privatekeyfile': {
        if (privateKey) throw ctx.err(e, 'Interface', `private key already given at line ${privateKeyLine}`);
        privateKey = k === 'privatekey' ? key(() => parsePrivateKey(e.value), ctx, e) : readPrivateKeyFile(e, ctx);
        privateKeyLine = e.line;
        break;
      }
      case 'address':
        for (const a of list(e.value)) {
          const c = parseInterfaceAddress(a);
          if (!c) throw ctx.err(e, 'Interface', `"${a}" is not an IP address or prefix`);
          out.addresses.push(c);
        }
        break;
      case 'listenport':
        out.listenPort = int(e, ctx, 'Interface', 0, 65535);
        break;
      case 'mtu':
        out.mtu = int(e, ctx, 'Interface', 576, 65535);
        break;
      case 'dns':
        out.dns.push(...list(e.value));
        break;
      case 'table':
        if (!/^(auto|off|\d+|[A-Za-z0-9_-]+)$/.test(e.value)) throw ctx.err(e, 'Interface', `"${e.value}" is not a routing table`);
        out.table = e.value;
        break;
      case 'preup':
        out.preUp.push(e.value);
        break;
      case 'postup':
        out.postUp.push(e.value);
        break;
      case 'predown':
        out.preDown.push(e.value);
        break;
      case 'postdown':
        out.postDown.push(e.value);
        break;
      case 'relay':
        for (const u of list(e.value)) out.relays.push(relayUrl(u, e, ctx));
        break;
      case 'stun':
        for (const v of list(e.value)) {
          const hp = parseHostPort(v);
          if (!hp) throw ctx.err(e, 'Interface', `"${v}" is not host:port`);
          out.stun.push(hp);
        }
        break;
      case 'relaycafile':
        out.relayCa = readFile(e, ctx, 'Interface');
        break;
      case 'fwmark': {
        const v = e.value.trim().toLowerCase();
        const n = v === 'off' ? 0 : /^(0x[0-9a-f]{1,8}|\d{1,10})$/.test(v) ? Number(v) : NaN;
        if (!Number.isInteger(n) || n > 0xffffffff) throw ctx.err(e, 'Interface', `"${e.value}" is not a mark (a number, 0x… or off)`);
        out.fwMark = n;
        break;
      }
      case 'meshkey': {
        const k = parseMeshPublicKey(e.value);
        if (!k) throw ctx.err(e, 'Interface', 'not a base64 mesh key (meshd mesh init prints it)');
        out.meshKey = k;
        break;
      }
      case 'domain': {
        const d = e.value.trim().toLowerCase().replace(/\.$/, '');
        if (!validDomain(d)) throw ctx.err(e, 'Interface', `"${e.value}" is not a DNS domain`);
        out.domain = d;
        break;
      }
      case 'splitdns': {
        const v = e.value.trim().toLowerCase();
        if (v !== 'auto' && v !== 'off') throw ctx.err(e, 'Interface', `"${e.value}" is not auto or off`);
        out.splitDns = v === 'auto';
        break;
      }
      case 'metricslisten': {
        const v = e.value.trim();
        if (v.toLowerCase() === 'off') {
          out.metricsListen = null;
          break;
        }
        const hp = parseHostPort(v);
        if (!hp || !isIP(hp.host)) throw ctx.err(e, 'Interface', `"${v}" is not an IP address and port (e.g. 127.0.0.1:9586)`);
        out.metricsListen = hp;
        break;
      }
      case 'hardnatprobes': {
        const v = e.value.trim().toLowerCase();
        if (v !== 'auto' && v !== 'off') throw ctx.err(e, 'Interface', `"${e.value}" is not auto or off`);
        out.hardNatProbes = v;
        break;
      }
      case 'hardnatprobebudget':
        out.hardNatProbeBudget = int(e, ctx, 'Interface', 0, 1_000_000);
        break;
      case 'hardnatsockets':
        out.hardNatSockets = int(e, ctx, 'Interface', 1, MAX_BIRTHDAY_SOCKETS);
        break;
      case 'hardnatprobesperattempt':
        out.hardNatProbesPerAttempt = int(e, ctx, 'Interface', 1, MAX_BIRTHDAY_PROBES);
        break;
      case 'saveconfig':
        ignored.push(`${ctx.file}:${e.line}: ${e.key}`);
        break;
      default:
        throw ctx.err(e, 'Interface', 'unknown key');
    }
  }
  if (!privateKey) throw new ConfigError(`${ctx.file}:${s.line}: [Interface] PrivateKey: missing (give PrivateKey or PrivateKeyFile)`);
  if (out.domain !== null && out.meshKey !== null) throw new ConfigError(`${ctx.file}:${s.line}: [Interface] Domain: a mesh's domain comes from its roster (meshd mesh init --domain); remove Domain or MeshKey`);
  return { privateKey, ...out };
}

function parsePeer(s: IniSection, ctx: Ctx): PeerConfig {
  let publicKey: NodePublicKey | null = null;
  const p: Omit<PeerConfig, 'publicKey'> = {
    presharedKey: null,
    allowedIps: [],
    endpoint: null,
    persistentKeepalive: 0,
    name: undefined,
    line: s.line,
  };
  for (const e of s.entries) {
    switch (e.key.toLowerCase()) {
      case 'publickey':
        publicKey = key(() => parsePublicKey(e.value), ctx, e, 'Peer');
        break;
      case 'presharedkey':
        p.presharedKey = key(() => parsePresharedKey(e.value), ctx, e, 'Peer');
        break;
      case 'allowedips':
        for (const a of list(e.value)) {
          const c = parseCidr(a);
          if (!c) throw ctx.err(e, 'Peer', `"${a}" is not an IP prefix`);
          p.allowedIps.push(c);
        }
        break;
      case 'endpoint': {
        const hp = parseHostPort(e.value);
        if (!hp) throw ctx.err(e, 'Peer', `"${e.value}" is not host:port`);
        p.endpoint = hp;
        break;
      }
      case 'persistentkeepalive':
        p.persistentKeepalive = e.value === 'off' ? 0 : int(e, ctx, 'Peer', 0, 65535);
        break;
      case 'name':
        if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(e.value)) throw ctx.err(e, 'Peer', `"${e.value}" is not a valid name (letters, digits, _ . -)`);
        p.name = e.value;
        break;
      default:
        throw ctx.err(e, 'Peer', 'unknown key');
    }
  }
  if (!publicKey) throw new ConfigError(`${ctx.file}:${s.line}: [Peer] PublicKey: missing`);
  return { publicKey, ...p };
}

function key<T>(parse: () => T, ctx: Ctx, e: IniEntry, section = 'Interface'): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof KeyFormatError) throw ctx.err(e, section, 'not a base64-encoded 32-byte key');
    throw err;
  }
}

function int(e: IniEntry, ctx: Ctx, section: string, min: number, max: number): number {
  if (!/^\d+$/.test(e.value) || Number(e.value) < min || Number(e.value) > max) {
    throw ctx.err(e, section, `"${e.value}" is not a whole number from ${min} to ${max}`);
  }
  return Number(e.value);
}

/** The host of a relay URL, without IPv6 brackets (for STUN defaults and route exemptions). */
export function relayHost(url: string): string {
  return new URL(url).hostname.replace(/^\[|\]$/g, '');
}

function relayUrl(v: string, e: IniEntry, ctx: Ctx): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw ctx.err(e, 'Interface', `"${v}" is not a URL (expected wss://host[:port]/)`);
  }
  if ((u.protocol !== 'wss:' && u.protocol !== 'ws:') || !u.hostname) {
    throw ctx.err(e, 'Interface', `"${v}" must be a wss:// or ws:// URL with a host`);
  }
  return u.toString();
}

function readFile(e: IniEntry, ctx: Ctx, section: string): Buffer {
  const path = resolve(dirname(ctx.file), e.value);
  try {
    return readFileSync(path);
  } catch (err) {
    throw ctx.err(e, section, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

function readPrivateKeyFile(e: IniEntry, ctx: Ctx): NodePrivateKey {
  const path = resolve(dirname(ctx.file), e.value);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw ctx.err(e, 'Interface', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const mode = statSync(path).mode & 0o077;
  if (mode !== 0) throw ctx.err(e, 'Interface', `${path} is readable by others (mode must be 0600)`);
  return key(() => parsePrivateKey(text.trim()), ctx, e);
}
