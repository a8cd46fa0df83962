// See vnet.h. Checksums are one's-complement sums over native-endian 16-bit loads, folded and stored
// with a native store: byte-order independent, so no swapping per word (RFC 1071 §2(B)).
#include "vnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

namespace meshd {

namespace {

constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
constexpr uint8_t kGsoNone = 0;
constexpr uint8_t kGsoTcpV4 = 1;
constexpr uint8_t kGsoTcpV6 = 4;
constexpr uint8_t kGsoEcn = 0x80;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kTcpFin = 0x01;
constexpr uint8_t kTcpPsh = 0x08;
constexpr uint8_t kTcpAck = 0x10;
constexpr uint8_t kTcpCwr = 0x80;
constexpr int kMaxIpPacket = 65535;

uint64_t Sum(const uint8_t* p, size_t n, uint64_t acc) {
  while (n >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    acc += w;
    p += 4;
    n -= 4;
  }
  if (n >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    acc += w;
    p += 2;
    n -= 2;
  }
  if (n == 1) {
    uint8_t last[2] = {p[0], 0};
    uint16_t w;
    memcpy(&w, last, 2);
    acc += w;
  }
  return acc;
}

uint16_t Fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

void Store16(uint8_t* p, uint16_t native) { memcpy(p, &native, 2); }
uint32_t ReadBe32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
void WriteBe32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}
void WriteBe16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

// The TCP/UDP pseudo-header sum for an IP packet `ip` with `l4len` bytes of transport header + data.
uint64_t PseudoSum(const uint8_t* ip, int version, uint8_t proto, int l4len) {
  uint64_t acc = version == 4 ? Sum(ip + 12, 8, 0) : Sum(ip + 8, 32, 0);
  acc += htons(proto);
  acc += htons(static_cast<uint16_t>(l4len));
  return acc;
}

void Ipv4HeaderChecksum(uint8_t* ip, int ihl) {
  ip[10] = 0;
  ip[11] = 0;
  Store16(ip + 10, static_cast<uint16_t>(~Fold(Sum(ip, ihl, 0))));
}

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

// IP and TCP header lengths of a TCP packet, or false when it is not one we can handle.
struct TcpLayout {
  int version;
  int iphl;
  int tcphl;
};

bool ParseTcp(const uint8_t* p, int len, TcpLayout* out) {
  if (len < 20) return false;
  int v = p[0] >> 4;
  int iphl;
  if (v == 4) {
    iphl = (p[0] & 0x0f) * 4;
    if (iphl < 20 || p[9] != kProtoTcp) return false;
  } else if (v == 6) {
    iphl = 40;
    if (len < 40 || p[6] != kProtoTcp) return false;  // extension headers: not offloaded by us
  } else {
    return false;
  }
  if (iphl + 20 > len) return false;
  int tcphl = (p[iphl + 12] >> 4) * 4;
  if (tcphl < 20 || iphl + tcphl > len) return false;
  out->version = v;
  out->iphl = iphl;
  out->tcphl = tcphl;
  return true;
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

// ---- GRO on the way into the kernel ----

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
  uint8_t buf[kGroupBytes];

  const uint8_t* head() const { return copied ? buf + kVnetHdrLen : first; }
};

namespace {
TunCoalescer::Group* groups() {
  static TunCoalescer::Group storage[kMaxGroups];
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

void TunCoalescer::Add(const uint8_t* pkt, int len) {
  Group* gs = groups();
  Candidate c;
  bool isTcp = false;
  bool candidate = ParseCandidate(pkt, len, &c, &isTcp);
  Group* same = nullptr;
  Group* empty = nullptr;
  if (isTcp) {
    for (int i = 0; i < kMaxGroups; i++) {
      if (!gs[i].active) {
        if (!empty) empty = &gs[i];
      } else if (SameFlow(gs[i].head(), pkt, c.t)) {
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
  if (!empty) {
    for (int i = 0; i < kMaxGroups; i++) WriteGroup(gs[i]);
    empty = &gs[0];
  }
  Group& g = *empty;
  g.active = true;
  g.closed = (c.flags & kTcpPsh) != 0;
  g.psh = (c.flags & kTcpPsh) != 0;
  g.copied = false;
  g.first = pkt;
  g.firstLen = len;
  g.t = c.t;
  g.segSize = c.payload;
  g.total = c.payload;
  g.count = 1;
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
