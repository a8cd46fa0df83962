// TSO on the way out of the kernel: see vnet.h. One superpacket read from the TUN becomes the
// wire-sized IP packets it stands for, or one packet gets its partial checksum completed.
#include <string.h>

#include "packet.h"
#include "vnet.h"

namespace meshd {

using namespace pkt;

namespace {

uint8_t* Reserve(SegmentSink* s, int len) {
  size_t pos = (s->used + 15) & ~static_cast<size_t>(15);
  size_t end = pos + s->headroom + len + s->tailroom;
  if (s->count >= s->maxPackets || end > s->capacity) return nullptr;
  s->offsets[s->count] = static_cast<int32_t>(pos + s->headroom);
  s->lengths[s->count] = len;
  s->count++;
  s->used = end;
  return s->base + pos + s->headroom;
}

// A UDP GSO packet (USO): the datagrams it stands for, each with its own IP and UDP lengths, IPv4
// ID (counting up from the first, as the kernel's own segmentation does) and full checksum.
int SegmentUdp(const VnetHdr& h, const uint8_t* pkt, int len, SegmentSink* sink) {
  if (len < 20 || h.gsoSize == 0) return -1;
  const int version = pkt[0] >> 4;
  int iphl;
  if (version == 4) {
    iphl = (pkt[0] & 0x0f) * 4;
    if (iphl < 20 || pkt[9] != kProtoUdp) return -1;
  } else if (version == 6) {
    iphl = 40;
    if (len < 40 || pkt[6] != kProtoUdp) return -1;  // extension headers: the kernel sets none here
  } else {
    return -1;
  }
  const int hdr = iphl + kUdpHeader;
  const int payload = len - hdr;
  if (payload <= 0) return -1;
  const int mss = h.gsoSize;
  const uint16_t id0 = version == 4 ? static_cast<uint16_t>((pkt[4] << 8) | pkt[5]) : 0;
  const int segments = (payload + mss - 1) / mss;
  const int before = sink->count;
  for (int k = 0; k < segments; k++) {
    const int off = k * mss;
    const int plen = payload - off < mss ? payload - off : mss;
    uint8_t* out = Reserve(sink, hdr + plen);
    if (!out) {
      sink->count = before;
      return -2;
    }
    memcpy(out, pkt, hdr);
    memcpy(out + hdr, pkt + hdr + off, plen);
    if (version == 4) {
      WriteBe16(out + 2, static_cast<uint16_t>(hdr + plen));
      WriteBe16(out + 4, static_cast<uint16_t>(id0 + k));
      Ipv4HeaderChecksum(out, iphl);
    } else {
      WriteBe16(out + 4, static_cast<uint16_t>(kUdpHeader + plen));
    }
    uint8_t* udp = out + iphl;
    WriteBe16(udp + 4, static_cast<uint16_t>(kUdpHeader + plen));
    udp[6] = 0;
    udp[7] = 0;
    uint16_t c = static_cast<uint16_t>(~Fold(Sum(udp, kUdpHeader + plen, PseudoSum(out, version, kProtoUdp, kUdpHeader + plen))));
    Store16(udp + 6, c == 0 ? 0xffff : c);
  }
  return segments;
}

}  // namespace

VnetHdr ParseVnetHdr(const uint8_t* p) {
  VnetHdr h;
  h.flags = p[0];
  h.gsoType = p[1];
  memcpy(&h.hdrLen, p + 2, 2);
  memcpy(&h.gsoSize, p + 4, 2);
  memcpy(&h.csumStart, p + 6, 2);
  memcpy(&h.csumOffset, p + 8, 2);
  return h;
}

int SegmentPacket(const VnetHdr& h, const uint8_t* pkt, int len, SegmentSink* sink) {
  if (len <= 0 || len > kMaxIpPacket) return -1;
  uint8_t type = h.gsoType & ~kGsoEcn;
  if (type == kGsoNone) {
    if ((h.flags & kNeedsCsum) && h.csumStart + h.csumOffset + 2 > len) return -1;
    uint8_t* out = Reserve(sink, len);
    if (!out) return -2;
    memcpy(out, pkt, len);
    if (h.flags & kNeedsCsum) {
      // The kernel left the pseudo-header sum in the checksum field; sum the rest over it.
      uint16_t c = static_cast<uint16_t>(~Fold(Sum(out + h.csumStart, len - h.csumStart, 0)));
      int v = out[0] >> 4;
      uint8_t proto = v == 4 ? out[9] : v == 6 ? out[6] : 0;
      if (c == 0 && proto == kProtoUdp) c = 0xffff;
      Store16(out + h.csumStart + h.csumOffset, c);
    }
    return 1;
  }
  if (type == kGsoUdpL4) return SegmentUdp(h, pkt, len, sink);
  if (type != kGsoTcpV4 && type != kGsoTcpV6) return -1;
  TcpLayout t;
  if (!ParseTcp(pkt, len, &t) || (t.version == 4) != (type == kGsoTcpV4) || h.gsoSize == 0) return -1;
  const int hdr = t.iphl + t.tcphl;
  const int payload = len - hdr;
  const int mss = h.gsoSize;
  const uint8_t* tcp0 = pkt + t.iphl;
  const uint32_t seq0 = ReadBe32(tcp0 + 4);
  const uint16_t id0 = t.version == 4 ? static_cast<uint16_t>((pkt[4] << 8) | pkt[5]) : 0;
  const int segments = payload <= 0 ? 1 : (payload + mss - 1) / mss;
  const int before = sink->count;
  for (int k = 0; k < segments; k++) {
    int off = k * mss;
    int plen = payload <= 0 ? 0 : (payload - off < mss ? payload - off : mss);
    uint8_t* out = Reserve(sink, hdr + plen);
    if (!out) {
      sink->count = before;  // all or nothing: a partial superpacket would look like loss to TCP
      return -2;
    }
    memcpy(out, pkt, hdr);
    memcpy(out + hdr, pkt + hdr + off, plen);
    uint8_t* tcp = out + t.iphl;
    if (t.version == 4) {
      WriteBe16(out + 2, static_cast<uint16_t>(hdr + plen));
      WriteBe16(out + 4, static_cast<uint16_t>(id0 + k));
      Ipv4HeaderChecksum(out, t.iphl);
    } else {
      WriteBe16(out + 4, static_cast<uint16_t>(t.tcphl + plen));
    }
    WriteBe32(tcp + 4, seq0 + static_cast<uint32_t>(off));
    if (k != segments - 1) tcp[13] &= static_cast<uint8_t>(~(kTcpFin | kTcpPsh));
    if (k != 0) tcp[13] &= static_cast<uint8_t>(~kTcpCwr);
    tcp[16] = 0;
    tcp[17] = 0;
    uint64_t acc = PseudoSum(out, t.version, kProtoTcp, t.tcphl + plen);
    Store16(tcp + 16, static_cast<uint16_t>(~Fold(Sum(tcp, t.tcphl + plen, acc))));
  }
  return segments;
}

}  // namespace meshd
