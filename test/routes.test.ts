// The routing rules' bookkeeping that needs no kernel: which rules a killed meshd left, by protocol.
import t from 'tap';
import { ruleProtocol, staleRulePriorities, DEFAULT_ROUTE_TABLE } from '../src/daemon/routes.js';

t.test('each table tags its rules with its own protocol number', async (t) => {
  t.equal(ruleProtocol(DEFAULT_ROUTE_TABLE), 224);
  t.equal(ruleProtocol(DEFAULT_ROUTE_TABLE + 15), 239, 'the last table meshd tries stays below 256');
});

t.test('stale rules are found by protocol in `ip -j rule show`, nothing else', async (t) => {
  const listing = JSON.stringify([
    { priority: 0, src: 'all', table: 'local' },
    { priority: 32761, src: 'all', dst: '203.0.113.7', ipproto: 'udp', dport: 40000, table: 'main', protocol: '224' },
    { priority: 32762, src: 'all', table: 'main', suppress_prefixlength: 0, protocol: '224' },
    { priority: 32763, src: 'all', ipproto: 'udp', sport: 51820, table: 'main', protocol: '225' },
    { priority: 32764, src: 'all', dst: '1.2.3.4', table: 'main' },
    { priority: 32766, src: 'all', table: 'main' },
  ]);
  t.same(staleRulePriorities(listing, '224'), [32761, 32762], "table 51820's, not another meshd's nor the system's");
  t.same(staleRulePriorities('', '224'), [], 'an ip that printed nothing: none');
  t.same(staleRulePriorities('{"priority":1}', '224'), [], 'not a list: none');
});
