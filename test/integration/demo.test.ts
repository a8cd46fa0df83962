// `meshd demo` (what the README's first command runs): relayed first, then direct, and nothing left.
import t from 'tap';
import { labUnavailable, MESHD_BIN } from '../helpers/lab.js';
import { execFileSync, spawnSync } from 'node:child_process';

const why = labUnavailable(['nft', 'conntrack', 'openssl', 'ping']);
if (why) t.plan(0, why);
else {
  t.test('meshd demo shows a ping going from relayed to direct, then removes everything', async (t) => {
    const r = spawnSync(process.execPath, [MESHD_BIN, 'demo'], { encoding: 'utf8', timeout: 120_000 });
    t.equal(r.status, 0, r.stderr);
    t.match(r.stdout, /pong from bob via relay wss:\/\/203\.0\.113\.10:8443\/ in \d+ms/, 'first via the relay');
    t.match(r.stdout, /pong from bob via 203\.0\.113\.2:51820 in \d+ms\ndirect path through both NATs \d+ ms after UDP opened/, 'then direct');
    t.ok(r.stdout.indexOf('via relay') < r.stdout.indexOf('via 203.0.113.2'), 'relayed replies come before the direct one');
    t.match(r.stdout, /3 received/, 'mesh ping answered');
    const id = /namespaces (m[0-9a-f]{6})\*/.exec(r.stdout)?.[1];
    t.ok(id, 'the demo names its namespaces');
    const left = execFileSync('ip', ['netns', 'list']).toString();
    t.notMatch(left, new RegExp(`^${id}`, 'm'), 'no namespace of the demo is left');
    const links = execFileSync('ip', ['-o', 'link']).toString();
    t.notMatch(links, new RegExp(`${id}`), 'no interface of the demo is left');
  });
}
