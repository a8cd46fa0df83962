// Packet helpers shared by TSO splitting (tso.cc) and GRO merging (gro.cc): RFC 1071 checksums over
// native-endian 16-bit loads (folded and stored with a native store: byte-order independent, no
// swapping per word), big-endian field access, and the IP/TCP header layout. Header-only, no I/O.
#pragma once
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

namespace meshd {
namespace pkt {

inline constexpr uint8_t kNeedsCsum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
inline constexpr uint8_t kGsoNone = 0;
inline constexpr uint8_t kGsoTcpV4 = 1;
inline constexpr uint8_t kGsoTcpV6 = 4;
inline constexpr uint8_t kGsoUdpL4 = 5;  // VIRTIO_NET_HDR_GSO_UDP_L4 (USO, Linux 6.2+), IPv4 and IPv6
inline constexpr uint8_t kGsoEcn = 0x80;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kTcpFin = 0x01;
inline constexpr uint8_t kTcpPsh = 0x08;
inline constexpr uint8_t kTcpAck = 0x10;
inline constexpr uint8_t kTcpCwr = 0x80;
inline constexpr int kMaxIpPacket = 65535;
inline constexpr int kUdpHeader = 8;
// Segments in one UDP GSO packet the kernel takes from a TUN: its UDP_MAX_SEGMENTS, 64 in older
// kernels (newer ones allow more); the smaller, so no kernel refuses the write.
inline constexpr int kMaxUdpSegments = 64;

inline uint64_t Sum(const uint8_t* p, size_t n, uint64_t acc) {
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

inline uint16_t Fold(uint64_t acc) {
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  return static_cast<uint16_t>(acc);
}

inline void Store16(uint8_t* p, uint16_t native) { memcpy(p, &native, 2); }
inline uint32_t ReadBe32(const uint8_t* p) { return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3]; }
inline void WriteBe32(uint8_t* p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}
inline void WriteBe16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

// The TCP/UDP pseudo-header sum for an IP packet `ip` with `l4len` bytes of transport header + data.
inline uint64_t PseudoSum(const uint8_t* ip, int version, uint8_t proto, int l4len) {
  uint64_t acc = version == 4 ? Sum(ip + 12, 8, 0) : Sum(ip + 8, 32, 0);
  acc += htons(proto);
  acc += htons(static_cast<uint16_t>(l4len));
  return acc;
}

inline void Ipv4HeaderChecksum(uint8_t* ip, int ihl) {
  ip[10] = 0;
  ip[11] = 0;
  Store16(ip + 10, static_cast<uint16_t>(~Fold(Sum(ip, ihl, 0))));
}

// IP and TCP header lengths of a TCP packet, or false when it is not one we can handle.
struct TcpLayout {
  int version;
  int iphl;
  int tcphl;
};

inline bool ParseTcp(const uint8_t* p, int len, TcpLayout* out) {
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

// The IP header length of a UDP packet (IPv4 with or without options, IPv6 without extension
// headers) whose IP and UDP lengths agree with `len`; 0 when it is not one, or is a fragment.
inline int ParseUdp(const uint8_t* p, int len, int* version) {
  if (len < 20) return 0;
  int v = p[0] >> 4;
  int iphl;
  if (v == 4) {
    iphl = (p[0] & 0x0f) * 4;
    if (iphl < 20 || p[9] != kProtoUdp || ((p[2] << 8) | p[3]) != len) return 0;
    if ((p[6] & 0x3f) != 0 || p[7] != 0) return 0;  // MF or a fragment offset
  } else if (v == 6) {
    iphl = 40;
    if (len < 40 || p[6] != kProtoUdp || ((p[4] << 8) | p[5]) + 40 != len) return 0;
  } else {
    return 0;
  }
  if (iphl + kUdpHeader > len || ((p[iphl + 4] << 8) | p[iphl + 5]) != len - iphl) return 0;
  *version = v;
  return iphl;
}

}  // namespace pkt
}  // namespace meshd
