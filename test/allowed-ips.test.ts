// The AllowedIPs trie against a slow linear reference, on random prefixes and addresses.
import t from 'tap';
import { AllowedIps } from '../src/tunnel/allowed-ips.js';
import { cidrContains, formatCidr, parseCidr, type Cidr } from '../src/tunnel/cidr.js';

function randomCidr(version: 4 | 6): Cidr {
  const bytes = new Uint8Array(version === 4 ? 4 : 16).map(() => Math.floor(Math.random() * 4)); // dense space: many overlaps
  const bits = Math.floor(Math.random() * (version === 4 ? 33 : 129));
  return parseCidr(`${formatCidr({ version, bytes, bits: version === 4 ? 32 : 128 }).split('/')[0]}/${bits}`)!;
}

/** Linear longest-prefix match, the reference. */
function reference(entries: [Cidr, number][], version: 4 | 6, addr: Uint8Array): number | null {
  let best: [Cidr, number] | null = null;
  for (const e of entries) {
    if (cidrContains(e[0], { version, bytes: addr }) && (!best || e[0].bits >= best[0].bits)) best = e;
  }
  return best ? best[1] : null;
}

t.test('trie agrees with a linear scan', async (t) => {
  for (const version of [4, 6] as const) {
    const trie = new AllowedIps<number>();
    const entries: [Cidr, number][] = [];
    for (let i = 0; i < 300; i++) {
      const c = randomCidr(version);
      // Later inserts of the same prefix replace earlier ones, as in wg(8).
      const existing = entries.findIndex((e) => formatCidr(e[0]) === formatCidr(c));
      if (existing >= 0) entries.splice(existing, 1);
      entries.push([c, i]);
      trie.insert(c, i);
    }
    let mismatches = 0;
    for (let i = 0; i < 3000; i++) {
      const addr = new Uint8Array(version === 4 ? 4 : 16).map(() => Math.floor(Math.random() * 4));
      if (trie.lookup(version, addr, 0) !== reference(entries, version, addr)) mismatches++;
    }
    t.equal(mismatches, 0, `IPv${version}: 3000 lookups match`);
  }
});

t.test('prefixes move between holders and are removed with them', async (t) => {
  const trie = new AllowedIps<string>();
  trie.insert(parseCidr('10.0.0.0/24')!, 'a');
  trie.insert(parseCidr('10.0.0.7/32')!, 'a');
  trie.insert(parseCidr('10.0.0.7/32')!, 'b');
  t.same(trie.prefixesOf('a').map(formatCidr), ['10.0.0.0/24'], 'the /32 moved to b');
  t.same(trie.prefixesOf('b').map(formatCidr), ['10.0.0.7/32']);
  const ip = (s: string) => parseCidr(s)!.bytes;
  t.equal(trie.lookup(4, ip('10.0.0.7'), 0), 'b');
  t.equal(trie.lookup(4, ip('10.0.0.8'), 0), 'a');
  trie.removeValue('b');
  t.equal(trie.lookup(4, ip('10.0.0.7'), 0), 'a', 'falls back to the shorter prefix');
  t.equal(trie.lookup(4, ip('10.0.1.1'), 0), null);
  trie.insert(parseCidr('::/0')!, 'c');
  t.equal(trie.lookup(6, ip('2001:db8::1'), 0), 'c', 'IPv6 default route');
  t.equal(trie.lookup(4, ip('192.168.0.1'), 0), null, 'does not leak across families');
});

t.test('CIDR parsing and formatting', async (t) => {
  t.equal(formatCidr(parseCidr('10.1.2.3/8')!), '10.0.0.0/8', 'host bits masked');
  t.equal(formatCidr(parseCidr('fd00:0:0:0:0:0:0:1')!), 'fd00::1/128');
  t.equal(formatCidr(parseCidr('::ffff:1.2.3.4/128')!), '::ffff:102:304/128');
  t.equal(parseCidr('10.0.0.0/33'), null);
  t.equal(parseCidr('10.0.0/8'), null);
  t.equal(parseCidr('fd00::/129'), null);
  t.equal(parseCidr('nonsense'), null);
  t.equal(parseCidr('10.0.0.0/-1'), null);
});
