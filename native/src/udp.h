// The data-plane UDP socket: dual-stack, large buffers, batched receive (recvmmsg, UDP GRO) and
// batched send (sendmmsg, UDP GSO). Addresses cross the N-API boundary as 34 bytes: the remote IPv6
// address (IPv4 as ::ffff:a.b.c.d), its port (big-endian), then the local address the datagram
// arrived on / is to leave from (IP_PKTINFO/IPV6_PKTINFO; all zero: none, the kernel chooses):
// WireGuard's sticky source addresses, so a reply leaves from the address the peer wrote to.
#pragma once
#include <stdint.h>

namespace meshd {

constexpr int kRemoteLen = 18;
constexpr int kAddrLen = 34;

struct UdpSocketInfo {
  int fd = -1;
  int port = 0;
  bool dualStack = false;
  bool gro = false;
};

// Opens and binds a UDP socket on `port` (0 = any) on all addresses; IPv6 dual-stack when the host
// has IPv6, else IPv4; its packets carry firewall mark `mark` unless it is 0. Returns 0 or -errno.
int UdpOpen(int port, int bufferBytes, uint32_t mark, UdpSocketInfo* out);

// Sets (0: clears) the firewall mark of the socket's packets (SO_MARK; needs CAP_NET_ADMIN). 0 or -errno.
int UdpSetMark(int fd, uint32_t mark);
// Every datagram with DF set and never fragmented here, whatever path MTU the kernel has cached
// (IP_PMTUDISC_PROBE, and IPV6_PMTUDISC_PROBE on a dual-stack socket): meshd finds each peer's path
// MTU itself. 0 or -errno.
int UdpSetPmtuProbe(int fd, bool dualStack);

// Receives up to `slots` datagrams into base + i * slotSize. lengths[i] is the byte count, gso[i]
// the segment size when the kernel coalesced several datagrams (UDP GRO), else 0. Returns the
// count, 0 when nothing is waiting, or -errno.
int UdpRecvBatch(int fd, uint8_t* base, int slotSize, int slots, int32_t* lengths, int32_t* gso, uint8_t* addrs);

// Sends count datagrams bases[which[i]][offsets[i], +lengths[i]) (which == nullptr: all in bases[0])
// to addrs[i]. Consecutive datagrams to the same address with one size (the last may be shorter)
// leave as one UDP GSO send, gathered from where they lie, when `gso` is set. Returns how many
// datagrams the kernel took (a full socket buffer is waited on briefly, then the rest is dropped);
// *errors counts datagrams refused for other reasons, and *gsoFailed is set when the kernel refused
// a GSO send (those datagrams were then sent one by one). A send whose local address the kernel
// refuses (it was removed) is sent again without it, and counted in *srcFailed.
int UdpSendBatch(int fd, bool dualStack, bool gso, const uint8_t* const* bases, const uint8_t* which, const int32_t* offsets,
                 const int32_t* lengths, const uint8_t* addrs, int count, int* errors, int* gsoFailed, int* srcFailed);

}  // namespace meshd
