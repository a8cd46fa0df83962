// DaemonMetrics over a status snapshot: bounded cardinality, labels, and the config key.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DaemonMetrics, METRICS_PEER_LIMIT } from '../src/daemon/metrics.js';
import type { DaemonStatus, PeerStatus } from '../src/daemon/status.js';
import { loadConfig } from '../src/config/config.js';
import { keyPair } from './helpers/keys.js';
import { tempDir } from './helpers/temp-dir.js';

function status(peers: number, names = true): DaemonStatus {
  const list: PeerStatus[] = Array.from({ length: peers }, (_, i) => ({
    publicKey: `${String(i).padStart(8, 'k')}xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx=`,
    name: names ? `peer${i}` : null,
    dnsName: null,
    allowedIps: [],
    endpoint: null,
    path: i % 2 ? { kind: 'direct', endpoint: '192.0.2.1:1' } : { kind: 'none', why: 'x' },
    latestHandshake: 1_000_000,
    rxBytes: 10 + i,
    txBytes: 20 + i,
    rttMs: 5,
    pathMtu: { mtu: 1420, source: 'probed' },
    birthday: null,
    persistentKeepalive: 0,
  }));
  return {
    interface: 'm0', publicKey: 'pk', listenPort: 1, addresses: [], mtu: 1280, endpoints: [], natMappingVariesByDestination: null, natPortsInOrder: false,
    relays: [{ url: 'wss://r', state: 'connected', latencyMs: 12, lastError: null, reconnects: 3 }],
    peers: list,
    drops: { outside: { 'not-wireguard': 7 }, inside: {} },
    counters: { handshakeInitiationsSent: 4, handshakesCompletedAsInitiator: 2 },
    dataPath: { udp: 'native', tunOffload: true, tunUso: true, aead: 'native' },
    mesh: null,
    names: null,
  };
}

const seriesOf = (text: string) => text.split('\n').filter((l) => l.startsWith('meshd_'));

t.test('per-peer series up to the limit, aggregates above it', async (t) => {
  const small = await new DaemonMetrics(async () => status(3), () => 1_010_000).render();
  t.match(small, /^meshd_peer_receive_bytes_total\{peer="peer2"\} 12$/m);
  t.match(small, /^meshd_peer_last_handshake_age_seconds\{peer="peer0"\} 10$/m);
  t.match(small, /^meshd_receive_bytes_total 33$/m);
  t.match(small, /^meshd_peers\{path="direct"\} 1$/m);
  t.match(small, /^meshd_relay_reconnects_total\{relay="wss:\/\/r"\} 3$/m);
  t.match(small, /^meshd_drops_total\{direction="outside",reason="not-wireguard"\} 7$/m);
  t.match(small, /^meshd_drops_total\{direction="inside",reason="no-route"\} 0$/m, 'every reason of the closed set, at 0');
  t.match(small, /^meshd_metrics_per_peer 1$/m);

  const atLimit = seriesOf(await new DaemonMetrics(async () => status(METRICS_PEER_LIMIT)).render());
  const huge = await new DaemonMetrics(async () => status(10_000)).render();
  t.notMatch(huge, /meshd_peer_receive_bytes_total\{/, 'no per-peer series for 10,000 peers');
  t.match(huge, /^meshd_metrics_per_peer 0$/m);
  t.match(huge, /^meshd_receive_bytes_total 50095000$/m, 'the aggregate counts every peer');
  t.ok(seriesOf(huge).length < 100, `10,000 peers: ${seriesOf(huge).length} series`);
  t.ok(atLimit.length < 6 * METRICS_PEER_LIMIT + 100, `${METRICS_PEER_LIMIT} peers: ${atLimit.length} series`);
});

t.test('peers without names get their short key; a repeated name is told apart', async (t) => {
  const st = status(2, false);
  const text = await new DaemonMetrics(async () => st).render();
  t.match(text, /^meshd_peer_receive_bytes_total\{peer="kkkkkkk0"\} 10$/m);
  st.peers[1].name = st.peers[0].name = 'same';
  const dup = await new DaemonMetrics(async () => st).render();
  t.match(dup, /\{peer="same"\} 10$/m);
  t.match(dup, /\{peer="same\/kkkkkkk1"\} 11$/m);
});

t.test('MetricsListen: an IP and port, or off; anything else names the line', async (t) => {
  const dir = tempDir('meshd-metrics-');
  const conf = (v: string) => {
    const f = join(dir, 'm0.conf');
    writeFileSync(f, `[Interface]\nPrivateKey = ${keyPair().priv}\nMetricsListen = ${v}\n`);
    return f;
  };
  t.same(loadConfig(conf('127.0.0.1:9586')).iface.metricsListen, { host: '127.0.0.1', port: 9586 });
  t.same(loadConfig(conf('[::1]:9586')).iface.metricsListen, { host: '::1', port: 9586 });
  t.equal(loadConfig(conf('off')).iface.metricsListen, null);
  t.throws(() => loadConfig(conf('localhost:9586')), /m0\.conf:3: .*MetricsListen.*not an IP address and port/);
  t.throws(() => loadConfig(conf('127.0.0.1')), /not an IP address and port/);
});
