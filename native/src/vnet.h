// TUN offloads (IFF_VNET_HDR): every packet crossing the TUN carries a 10-byte virtio-net header.
//  - Reading: the kernel hands us TCP "superpackets" of up to 64 KiB (TSO), UDP ones (USO, Linux
//    6.2+: a socket's UDP_SEGMENT sends) and packets whose checksum is only partly computed (CSUM);
//    SegmentPacket turns one into wire-ready IP packets.
//  - Writing: TunCoalescer merges consecutive segments of one TCP flow into one superpacket (GRO),
//    so the kernel's TCP stack sees one packet instead of dozens; with USO, datagrams of one UDP
//    flow too (one write for a run of them; a socket with UDP_GRO gets them as one).
// Splitting lives in tso.cc, merging in gro.cc, the header helpers they share in packet.h. Pure
// functions over buffers, except TunCoalescer::Flush, which writes to the fd.
#pragma once
#include <stddef.h>
#include <stdint.h>

namespace meshd {

namespace pkt {
struct TcpLayout;  // packet.h
}

constexpr int kVnetHdrLen = 10;

struct VnetHdr {
  uint8_t flags;
  uint8_t gsoType;
  uint16_t hdrLen;
  uint16_t gsoSize;
  uint16_t csumStart;
  uint16_t csumOffset;
};

// Where SegmentPacket puts each output packet: the caller reserves `headroom` bytes before and
// `tailroom` after each one.
struct SegmentSink {
  uint8_t* base;
  size_t capacity;
  size_t used;
  int headroom;
  int tailroom;
  int32_t* offsets;
  int32_t* lengths;
  int maxPackets;
  int count;
};

// Reads the header at p (host byte order, as the TUN uses without TUNSETVNETLE on little-endian).
VnetHdr ParseVnetHdr(const uint8_t* p);

// Appends the IP packets that `pkt` (len bytes after its virtio-net header h) stands for to the sink:
// the packet itself with its checksum completed, or its TSO segments with headers rewritten and
// checksums computed. Returns the number of packets appended, or -1 for a malformed packet (nothing
// appended) and -2 when the sink is full.
int SegmentPacket(const VnetHdr& h, const uint8_t* pkt, int len, SegmentSink* sink);

// Merges TCP segments into GSO superpackets and writes everything to a TUN fd with a virtio-net
// header. Add() packets in order, then Flush(); packets of one flow keep their order.
class TunCoalescer {
 public:
  // udp: the TUN took USO (TUN_F_USO4/6), so UDP datagrams of one flow are merged too.
  explicit TunCoalescer(int fd, bool udp = false) : fd_(fd), udp_(udp) {}
  // The packet must stay valid until Flush() returns.
  void Add(const uint8_t* pkt, int len);
  // Writes all pending packets; returns how many writes failed.
  int Flush();
  int writes() const { return writes_; }
  struct Group;  // one flow being merged (gro.cc)

 private:
  void WriteGroup(Group& g);
  void WriteUdpGroup(Group& g, uint8_t* p, int hdr, int len);
  void AddUdp(const uint8_t* pkt, int len, int version, int iphl, int payload);
  Group& StartGroup(Group* empty, const uint8_t* pkt, int len, const pkt::TcpLayout& t, int payload, bool udp);
  void WritePlain(const uint8_t* pkt, int len);
  int fd_;
  bool udp_;
  int errors_ = 0;
  int writes_ = 0;
};

}  // namespace meshd
