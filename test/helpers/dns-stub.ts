// An "upstream" resolver for lab namespaces: `node dns-stub.js ADDR IP` answers every A query on
// ADDR:53 (UDP) with IP, and every other query with an empty NOERROR; prints "listening".
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

const [, , addr, ip] = process.argv;
const sock = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
sock.on('message', (msg, rinfo) => {
  let q: dnsPacket.Packet;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    return;
  }
  const question = q.questions?.[0];
  if (!question) return;
  const answers: dnsPacket.Answer[] = question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, class: 'IN', data: ip }] : [];
  sock.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers }), rinfo.port, rinfo.address);
});
sock.bind(53, addr, () => process.stdout.write('listening\n'));
