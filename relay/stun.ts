// The relay's embedded STUN server (RFC 5389 binding responses with XOR-MAPPED-ADDRESS), via `stun`.
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';
import stun from 'stun';
import type { RelayMetrics } from './metrics.js';
import type { HostPort } from '../src/config/config.js';

const SOFTWARE = 'meshd-relay';

export async function startStun(addr: HostPort, metrics: RelayMetrics): Promise<{ close(): void; port: number }> {
  const type = isIPv6(addr.host) || addr.host === '' ? 'udp6' : 'udp4';
  const socket = dgram.createSocket({ type, ipv6Only: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(addr.port, addr.host === '' ? '::' : addr.host, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const server = stun.createServer({ type, socket });
  server.on('bindingRequest', (req, rinfo) => {
    const res = stun.createMessage(stun.constants.STUN_BINDING_RESPONSE, req.transactionId);
    const address = rinfo.address.startsWith('::ffff:') ? rinfo.address.slice(7) : rinfo.address;
    res.addXorAddress(address, rinfo.port);
    res.addSoftware(SOFTWARE);
    server.send(res, rinfo.port, rinfo.address);
    metrics.stunRequests.inc();
  });
  // Non-STUN or malformed datagrams are ignored by the library; socket errors must not kill the relay.
  server.on('error', () => {});
  socket.on('error', () => {});
  return { close: () => server.close(), port: socket.address().port };
}
