// GRO on the way into the kernel: see vnet.h. Consecutive segments of one TCP flow in a batch become
// one GSO superpacket with a virtio-net header, and (when the TUN took USO) so do datagrams of one
// UDP flow; everything else is written as it is.
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "packet.h"
#include "vnet.h"

namespace meshd {

using namespace pkt;

namespace {

constexpr int kMaxGroups = 16;
constexpr int kGroupBytes = kVnetHdrLen + kMaxIpPacket;

struct Candidate {
  TcpLayout t;
  int payload;
  uint32_t seq;
  uint8_t flags;
};

// A TCP segment that may be merged: plain ACK (PSH allowed) with data, IPv4 without options or
// fragmentation.
bool ParseCandidate(const uint8_t* p, int len, Candidate* c, bool* isTcp) {
  *isTcp = ParseTcp(p, len, &c->t);
  if (!*isTcp) return false;
  if (c->t.version == 4) {
    int total = (p[2] << 8) | p[3];
    if (total != len || c->t.iphl != 20 || (p[6] & 0x3f) != 0 || p[7] != 0) return false;  // MF or offset
  } else if (((p[4] << 8) | p[5]) + 40 != len) {
    return false;
  }
  const uint8_t* tcp = p + c->t.iphl;
  c->flags = tcp[13];
  if ((c->flags & ~(kTcpAck | kTcpPsh)) != 0 || !(c->flags & kTcpAck)) return false;
  c->payload = len - c->t.iphl - c->t.tcphl;
  c->seq = ReadBe32(tcp + 4);
  return c->payload > 0;
}

// Whether a UDP datagram (ParseUdp: `iphl`, `version`) may be merged: IPv4 without options, some
// payload, and a checksum that is there and right (the merged packet's checksum is left to the
// kernel, which would otherwise take a corrupted datagram for a good one).
bool UdpCandidate(const uint8_t* p, int len, int version, int iphl) {
  if ((version == 4 && iphl != 20) || len - iphl <= kUdpHeader) return false;
  const uint8_t* udp = p + iphl;
  if (udp[6] == 0 && udp[7] == 0) return false;  // IPv4's "no checksum" (IPv6 must have one)
  return Fold(Sum(udp, len - iphl, PseudoSum(p, version, kProtoUdp, len - iphl))) == 0xffff;
}

bool SameFlow(const uint8_t* a, const uint8_t* b, const TcpLayout& t) {
  if ((a[0] >> 4) != (b[0] >> 4)) return false;
  if (t.version == 4) {
    if (memcmp(a + 12, b + 12, 8) != 0) return false;
  } else if (memcmp(a + 8, b + 8, 32) != 0) {
    return false;
  }
  return memcmp(a + t.iphl, b + t.iphl, 4) == 0;  // ports
}

}  // namespace

struct TunCoalescer::Group {
  bool active = false;
  bool udp = false;     // a UDP flow (t.tcphl is then the UDP header's 8 bytes)
  bool closed = false;  // a short or PSH segment ended it
  bool copied = false;  // the first packet is in buf (else it is still at `first`)
  bool psh = false;
  const uint8_t* first = nullptr;
  int firstLen = 0;
  TcpLayout t{};
  int segSize = 0;
  int total = 0;  // payload bytes
  int count = 0;
  uint32_t nextSeq = 0;
  // kGroupBytes of its own, kept apart from the fields above: every Add and Flush looks at all 16
  // groups' fields, which then share a few cache lines and one page instead of touching 16 pages
  // 64 KiB apart (16 TLB misses on each write after an idle spell, even for a lone ping).
  uint8_t* buf = nullptr;

  const uint8_t* head() const { return copied ? buf + kVnetHdrLen : first; }
};

namespace {
TunCoalescer::Group* groups() {
  static uint8_t buffers[kMaxGroups][kGroupBytes];
  static TunCoalescer::Group storage[kMaxGroups];
  static const bool ready = [] {
    for (int i = 0; i < kMaxGroups; i++) storage[i].buf = buffers[i];
    return true;
  }();
  (void)ready;
  return storage;
}
}  // namespace

void TunCoalescer::WritePlain(const uint8_t* pkt, int len) {
  static const uint8_t zero[kVnetHdrLen] = {0};
  iovec iov[2] = {{const_cast<uint8_t*>(zero), kVnetHdrLen}, {const_cast<uint8_t*>(pkt), static_cast<size_t>(len)}};
  writes_++;
  if (writev(fd_, iov, 2) < 0) errors_++;
}

void TunCoalescer::WriteGroup(Group& g) {
  g.active = false;
  if (g.count == 1) {
    WritePlain(g.head(), g.copied ? g.t.iphl + g.t.tcphl + g.total : g.firstLen);
    return;
  }
  uint8_t* p = g.buf + kVnetHdrLen;
  const int hdr = g.t.iphl + g.t.tcphl;
  const int len = hdr + g.total;
  if (g.udp) {
    WriteUdpGroup(g, p, hdr, len);
    return;
  }
  if (g.t.version == 4) {
    WriteBe16(p + 2, static_cast<uint16_t>(len));
    Ipv4HeaderChecksum(p, g.t.iphl);
  } else {
    WriteBe16(p + 4, static_cast<uint16_t>(g.t.tcphl + g.total));
  }
  uint8_t* tcp = p + g.t.iphl;
  if (g.psh) tcp[13] |= kTcpPsh;
  // CHECKSUM_PARTIAL: the checksum field holds the pseudo-header sum; the kernel trusts the rest.
  Store16(tcp + 16, Fold(PseudoSum(p, g.t.version, kProtoTcp, g.t.tcphl + g.total)));
  uint8_t* h = g.buf;
  h[0] = kNeedsCsum;
  h[1] = g.t.version == 4 ? kGsoTcpV4 : kGsoTcpV6;
  uint16_t fields[4] = {static_cast<uint16_t>(hdr), static_cast<uint16_t>(g.segSize), static_cast<uint16_t>(g.t.iphl), 16};
  memcpy(h + 2, fields, sizeof(fields));
  writes_++;
  if (write(fd_, g.buf, kVnetHdrLen + len) < 0) errors_++;
}

void TunCoalescer::WriteUdpGroup(Group& g, uint8_t* p, int hdr, int len) {
  if (g.t.version == 4) {
    WriteBe16(p + 2, static_cast<uint16_t>(len));
    Ipv4HeaderChecksum(p, g.t.iphl);
  } else {
    WriteBe16(p + 4, static_cast<uint16_t>(kUdpHeader + g.total));
  }
  uint8_t* udp = p + g.t.iphl;
  WriteBe16(udp + 4, static_cast<uint16_t>(kUdpHeader + g.total));
  // CHECKSUM_PARTIAL, as for TCP: the kernel completes each datagram's checksum when it splits them.
  Store16(udp + 6, Fold(PseudoSum(p, g.t.version, kProtoUdp, kUdpHeader + g.total)));
  uint8_t* h = g.buf;
  h[0] = kNeedsCsum;
  h[1] = kGsoUdpL4;
  uint16_t fields[4] = {static_cast<uint16_t>(hdr), static_cast<uint16_t>(g.segSize), static_cast<uint16_t>(g.t.iphl), 6};
  memcpy(h + 2, fields, sizeof(fields));
  writes_++;
  if (write(fd_, g.buf, kVnetHdrLen + len) < 0) errors_++;
}

// One UDP datagram: appended to its flow's group when it fits (no larger than the group's first, no
// more after a shorter one, the same IP header fields), else it starts a new group; see Add.
void TunCoalescer::AddUdp(const uint8_t* pkt, int len, int version, int iphl, int payload) {
  Group* gs = groups();
  TcpLayout t{version, iphl, kUdpHeader};
  Group* same = nullptr;
  Group* empty = nullptr;
  for (int i = 0; i < kMaxGroups; i++) {
    if (!gs[i].active) {
      if (!empty) empty = &gs[i];
    } else if (gs[i].udp && SameFlow(gs[i].head(), pkt, t)) {
      same = &gs[i];
    }
  }
  if (same) {
    const uint8_t* h = same->head();
    const int hdr = iphl + kUdpHeader;
    bool ok = !same->closed && same->t.iphl == iphl && same->count < kMaxUdpSegments && payload <= same->segSize &&
              hdr + same->total + payload <= kMaxIpPacket;
    if (ok && version == 4) ok = pkt[1] == h[1] && (pkt[6] & 0xe0) == (h[6] & 0xe0) && pkt[8] == h[8];  // TOS, DF, TTL
    if (ok && version == 6) ok = memcmp(pkt, h, 4) == 0 && pkt[7] == h[7];                              // class/flow, hops
    if (ok) {
      if (!same->copied) {
        memcpy(same->buf + kVnetHdrLen, same->first, same->firstLen);
        same->copied = true;
      }
      memcpy(same->buf + kVnetHdrLen + hdr + same->total, pkt + hdr, payload);
      same->total += payload;
      same->count++;
      if (payload < same->segSize) same->closed = true;
      return;
    }
    WriteGroup(*same);
    empty = same;
  }
  StartGroup(empty, pkt, len, t, payload, true);
}

// A new group for `pkt` in the free slot `empty` (none: every group is written out first).
TunCoalescer::Group& TunCoalescer::StartGroup(Group* empty, const uint8_t* pkt, int len, const TcpLayout& t, int payload, bool udp) {
  if (!empty) {
    Group* gs = groups();
    for (int i = 0; i < kMaxGroups; i++) WriteGroup(gs[i]);
    empty = &gs[0];
  }
  Group& g = *empty;
  g.active = true;
  g.udp = udp;
  g.closed = false;
  g.psh = false;
  g.copied = false;
  g.first = pkt;
  g.firstLen = len;
  g.t = t;
  g.segSize = payload;
  g.total = payload;
  g.count = 1;
  g.nextSeq = 0;
  return g;
}

void TunCoalescer::Add(const uint8_t* pkt, int len) {
  Group* gs = groups();
  int version = 0;
  int iphl = udp_ ? ParseUdp(pkt, len, &version) : 0;
  if (iphl > 0) {
    if (UdpCandidate(pkt, len, version, iphl)) {
      AddUdp(pkt, len, version, iphl, len - iphl - kUdpHeader);
    } else {
      // A UDP datagram we leave as it is: after what its flow has pending, to keep the order.
      TcpLayout t{version, iphl, kUdpHeader};
      for (int i = 0; i < kMaxGroups; i++) {
        if (gs[i].active && gs[i].udp && gs[i].t.iphl == iphl && SameFlow(gs[i].head(), pkt, t)) WriteGroup(gs[i]);
      }
      WritePlain(pkt, len);
    }
    return;
  }
  Candidate c{};
  bool isTcp = false;
  bool candidate = ParseCandidate(pkt, len, &c, &isTcp);
  Group* same = nullptr;
  Group* empty = nullptr;
  if (isTcp) {
    for (int i = 0; i < kMaxGroups; i++) {
      if (!gs[i].active) {
        if (!empty) empty = &gs[i];
      } else if (!gs[i].udp && SameFlow(gs[i].head(), pkt, c.t)) {
        same = &gs[i];
      }
    }
  }
  if (!candidate) {
    if (same) WriteGroup(*same);  // keep the flow's order
    WritePlain(pkt, len);
    return;
  }
  if (same) {
    const uint8_t* h = same->head();
    const uint8_t* tcp = pkt + c.t.iphl;
    const uint8_t* htcp = h + same->t.iphl;
    const int hdr = c.t.iphl + c.t.tcphl;
    bool ok = !same->closed && c.seq == same->nextSeq && c.t.tcphl == same->t.tcphl && c.payload <= same->segSize &&
              hdr + same->total + c.payload <= kMaxIpPacket && memcmp(tcp + 8, htcp + 8, 4) == 0 &&  // ack
              memcmp(tcp + 20, htcp + 20, c.t.tcphl - 20) == 0;                                        // options
    if (ok && c.t.version == 4) ok = pkt[1] == h[1] && pkt[6] == h[6] && pkt[8] == h[8];  // TOS, DF, TTL
    if (ok && c.t.version == 6) ok = memcmp(pkt, h, 4) == 0 && pkt[7] == h[7];            // class/flow, hops
    if (ok) {
      if (!same->copied) {
        memcpy(same->buf + kVnetHdrLen, same->first, same->firstLen);
        same->copied = true;
      }
      uint8_t* dst = same->buf + kVnetHdrLen;
      memcpy(dst + hdr + same->total, pkt + hdr, c.payload);
      memcpy(dst + same->t.iphl + 14, tcp + 14, 2);  // the newest window
      same->total += c.payload;
      same->nextSeq += static_cast<uint32_t>(c.payload);
      same->count++;
      if (c.payload < same->segSize) same->closed = true;
      if (c.flags & kTcpPsh) {
        same->psh = true;
        same->closed = true;
      }
      return;
    }
    WriteGroup(*same);
    empty = same;
  }
  Group& g = StartGroup(empty, pkt, len, c.t, c.payload, false);
  g.closed = (c.flags & kTcpPsh) != 0;
  g.psh = g.closed;
  g.nextSeq = c.seq + static_cast<uint32_t>(c.payload);
}

int TunCoalescer::Flush() {
  Group* gs = groups();
  for (int i = 0; i < kMaxGroups; i++) {
    if (gs[i].active) WriteGroup(gs[i]);
  }
  int e = errors_;
  errors_ = 0;
  return e;
}

}  // namespace meshd
