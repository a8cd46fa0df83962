// Config parsing: wg-quick files load unchanged; every mistake is one line naming file, line and key.
import t from 'tap';
import { parseConfig, loadConfig } from '../src/config/config.js';
import { ConfigError } from '../src/errors.js';
import { formatCidr } from '../src/tunnel/cidr.js';
import { keyPair } from './helpers/keys.js';
import { writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/temp-dir.js';

const A = keyPair();
const B = keyPair();
const C = keyPair();

const good = `# a wg-quick file
[Interface]
PrivateKey = ${A.priv}
Address = 10.0.0.1/24, fd00::1/64
Address = 10.1.0.1/16
ListenPort = 51820
DNS = 10.0.0.53
PostUp = echo up %i
SaveConfig = false

[Peer]
# laptop
PublicKey = ${B.pub}
PresharedKey = ${C.pub}
AllowedIPs = 10.0.0.2/32, fd00::2/128
Endpoint = [2001:db8::1]:51820
PersistentKeepalive = 25
Name = laptop

[Peer]
PublicKey = ${C.pub}
AllowedIPs = 0.0.0.0/0
Endpoint = vpn.example.com:51820
`;

t.test('a wg-quick config loads', async (t) => {
  const c = parseConfig(good, '/etc/meshd/wg0.conf');
  t.equal(c.interfaceName, 'wg0', 'interface name from the file name');
  t.same(c.iface.addresses.map(formatCidr), ['10.0.0.1/24', 'fd00::1/64', '10.1.0.1/16'], 'host bits of addresses are kept');
  t.equal(c.iface.listenPort, 51820);
  t.equal(c.iface.mtu, null, 'no MTU: the underlay decides and each path is probed');
  t.equal(parseConfig(good.replace('[Interface]', '[Interface]\nMTU = 1380'), '/etc/meshd/wg0.conf').iface.mtu, 1380, 'MTU = is kept');
  t.same(c.iface.postUp, ['echo up %i']);
  t.same(c.ignored, ['/etc/meshd/wg0.conf:9: SaveConfig']);
  t.equal(c.peers.length, 2);
  t.same(c.peers[0].endpoint, { host: '2001:db8::1', port: 51820 });
  t.equal(c.peers[0].persistentKeepalive, 25);
  t.equal(c.peers[0].name, 'laptop');
  t.same(c.peers[1].endpoint, { host: 'vpn.example.com', port: 51820 });
  t.same(c.peers[1].allowedIps.map(formatCidr), ['0.0.0.0/0']);
});

t.test('FwMark: hex, decimal or off, as wg-quick writes it', async (t) => {
  for (const [v, want] of [['0x1234', 0x1234], ['51820', 51820], ['off', 0], ['0xffffffff', 0xffffffff]] as const) {
    t.equal(parseConfig(good.replace('ListenPort = 51820', `ListenPort = 51820\nFwMark = ${v}`), 'f.conf', 'wg0').iface.fwMark, want, `FwMark = ${v}`);
  }
  t.equal(parseConfig(good, 'f.conf', 'wg0').iface.fwMark, 0, 'no FwMark: no mark');
});

const cases: [string, string, RegExp][] = [
  ['unknown key', good.replace('ListenPort', 'ListenPrt'), /^f\.conf:6: \[Interface\] ListenPrt: unknown key$/],
  ['bad base64', good.replace(`PublicKey = ${B.pub}`, 'PublicKey = abc'), /^f\.conf:13: \[Peer\] PublicKey: not a base64-encoded 32-byte key$/],
  ['bad CIDR', good.replace('10.0.0.2/32', '10.0.0.2/33'), /^f\.conf:15: \[Peer\] AllowedIPs: "10\.0\.0\.2\/33" is not an IP prefix$/],
  ['bad address', good.replace('Address = 10.1.0.1/16', 'Address = 10.1.0/16'), /^f\.conf:5: \[Interface\] Address: "10\.1\.0\/16"/],
  ['duplicate peer', good.replace(`PublicKey = ${C.pub}\nAllowedIPs = 0`, `PublicKey = ${B.pub}\nAllowedIPs = 0`), /^f\.conf:20: \[Peer\] PublicKey: duplicate peer \(first defined at line 11\)$/],
  ['missing PrivateKey', good.replace(`PrivateKey = ${A.priv}\n`, ''), /^f\.conf:2: \[Interface\] PrivateKey: missing/],
  ['missing PublicKey', good.replace(`PublicKey = ${C.pub}\nAllowedIPs = 0.0.0.0/0`, 'AllowedIPs = 0.0.0.0/0'), /^f\.conf:20: \[Peer\] PublicKey: missing$/],
  ['bad endpoint', good.replace('vpn.example.com:51820', 'vpn.example.com'), /^f\.conf:23: \[Peer\] Endpoint: "vpn\.example\.com" is not host:port$/],
  ['bad port', good.replace('ListenPort = 51820', 'ListenPort = 70000'), /^f\.conf:6: \[Interface\] ListenPort: "70000" is not a whole number from 0 to 65535$/],
  ['bad MTU', good.replace('ListenPort = 51820', 'MTU = 100'), /^f\.conf:6: \[Interface\] MTU:/],
  ['bad FwMark', good.replace('ListenPort = 51820', 'FwMark = 0xgg'), /^f\.conf:6: \[Interface\] FwMark: "0xgg" is not a mark \(a number, 0x… or off\)$/],
  ['FwMark too big', good.replace('ListenPort = 51820', 'FwMark = 4294967296'), /^f\.conf:6: \[Interface\] FwMark:/],
  ['no section', `PrivateKey = ${A.priv}\n`, /^f\.conf:1: "PrivateKey" appears before any/],
  ['unknown section', good + '\n[Peers]\n', /^f\.conf:25: unknown section \[Peers\]/],
  ['junk line', good.replace('DNS = 10.0.0.53', 'DNS 10.0.0.53'), /^f\.conf:7: expected "Key = Value"/],
  ['two interfaces', good + '[Interface]\n', /^f\.conf:24: a second \[Interface\] section$/],
  ['no interface', `[Peer]\nPublicKey = ${B.pub}\n`, /^f\.conf: no \[Interface\] section$/],
];

t.test('each mistake is a one-line ConfigError naming file, line and key', async (t) => {
  for (const [what, text, re] of cases) {
    try {
      parseConfig(text, 'f.conf', 'wg0');
      t.fail(`${what}: accepted`);
    } catch (err) {
      t.ok(err instanceof ConfigError, `${what}: a ConfigError`);
      t.match((err as Error).message, re, what);
      t.notMatch((err as Error).message, /\n/, `${what}: one line`);
    }
  }
  t.throws(() => parseConfig(good, '/x/this-name-is-far-too-long.conf'), /interface name/);
});

t.test('PrivateKeyFile must exist and be 0600', async (t) => {
  const dir = tempDir('meshd-cfg-');
  const keyFile = join(dir, 'a.key');
  writeFileSync(keyFile, A.priv + '\n', { mode: 0o600 });
  const conf = join(dir, 'wg1.conf');
  writeFileSync(conf, `[Interface]\nPrivateKeyFile = a.key\n`);
  t.equal(loadConfig(conf).interfaceName, 'wg1', 'relative to the config file');
  chmodSync(keyFile, 0o644);
  t.throws(() => loadConfig(conf), /wg1\.conf:2: \[Interface\] PrivateKeyFile: .* readable by others/);
  writeFileSync(conf, `[Interface]\nPrivateKeyFile = missing.key\n`);
  t.throws(() => loadConfig(conf), /wg1\.conf:2: \[Interface\] PrivateKeyFile: cannot read .*ENOENT/);
  t.throws(() => loadConfig(join(dir, 'nope.conf')), /nope\.conf: cannot read: ENOENT/);
});

t.test('the parser never throws anything but ConfigError on random input', async (t) => {
  const alphabet = '[]=#,/:. \nabcdefPrivateKeyPeerInterfaceAllowedIPs0123456789';
  let other = 0;
  for (let i = 0; i < 3000; i++) {
    let s = '';
    for (let j = 0; j < 80; j++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
    try {
      parseConfig(s, 'r.conf', 'wg0');
    } catch (err) {
      if (!(err instanceof ConfigError)) other++;
    }
  }
  t.equal(other, 0);
});
