// See udp.h. Everything here is plain POSIX/Linux socket calls; no allocation per datagram.
#include "udp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

namespace meshd {

namespace {

constexpr int kMaxBatch = 1024;
// The kernel accepts at most 64 segments per GSO send (UDP_MAX_SEGMENTS) and 64 KiB in all.
constexpr int kMaxGsoSegments = 64;
constexpr int kMaxGsoBytes = 65000;
// How long a send waits for room in a full socket buffer before it drops the rest of the batch.
constexpr int kSendWaitMs = 20;

void SetBuffer(int fd, int opt, int force, int bytes) {
  // As root, *BUFFORCE passes net.core.[rw]mem_max; otherwise the capped request is the best we get.
  if (setsockopt(fd, SOL_SOCKET, force, &bytes, sizeof(bytes)) != 0) setsockopt(fd, SOL_SOCKET, opt, &bytes, sizeof(bytes));
}

int OpenFamily(int family, int port, int bufferBytes, uint32_t mark, UdpSocketInfo* out) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (mark != 0) {
    int r = UdpSetMark(fd, mark);
    if (r != 0) {
      close(fd);
      return r;
    }
  }
  int off = 0;
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  SetBuffer(fd, SO_RCVBUF, SO_RCVBUFFORCE, bufferBytes);
  SetBuffer(fd, SO_SNDBUF, SO_SNDBUFFORCE, bufferBytes);
  sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  socklen_t len;
  if (family == AF_INET6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    a->sin6_addr = in6addr_any;
    len = sizeof(sockaddr_in6);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    a->sin_addr.s_addr = htonl(INADDR_ANY);
    len = sizeof(sockaddr_in);
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  out->fd = fd;
  out->port = ntohs(family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  out->dualStack = family == AF_INET6;
  int on = 1;
  out->gro = setsockopt(fd, IPPROTO_UDP, UDP_GRO, &on, sizeof(on)) == 0;
  // The local address of each datagram (for IPv4 on a dual-stack socket too, as ::ffff:a.b.c.d).
  if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
  else setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
  return 0;
}

void ToAddr18(const sockaddr_storage& ss, uint8_t* out) {
  memset(out, 0, kAddrLen);
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    memcpy(out, &a->sin6_addr, 16);
    memcpy(out + 16, &a->sin6_port, 2);
  } else if (ss.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
    out[10] = 0xff;
    out[11] = 0xff;
    memcpy(out + 12, &a->sin_addr, 4);
    memcpy(out + 16, &a->sin_port, 2);
  }
}

bool IsV4Mapped(const uint8_t* a) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return memcmp(a, prefix, 12) == 0;
}

// Fills `ss` from 18 address bytes; false when a v6 address meets a v4-only socket.
bool FromAddr18(const uint8_t* in, bool dualStack, sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  if (dualStack) {
    auto* a = reinterpret_cast<sockaddr_in6*>(ss);
    a->sin6_family = AF_INET6;
    memcpy(&a->sin6_addr, in, 16);
    memcpy(&a->sin6_port, in + 16, 2);
    *len = sizeof(sockaddr_in6);
    return true;
  }
  if (!IsV4Mapped(in)) return false;
  auto* a = reinterpret_cast<sockaddr_in*>(ss);
  a->sin_family = AF_INET;
  memcpy(&a->sin_addr, in + 12, 4);
  memcpy(&a->sin_port, in + 16, 2);
  *len = sizeof(sockaddr_in);
  return true;
}

constexpr size_t kSendControl = CMSG_SPACE(sizeof(uint16_t)) + CMSG_SPACE(sizeof(in6_pktinfo));
constexpr size_t kRecvControl = CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(in6_pktinfo)) + CMSG_SPACE(sizeof(in_pktinfo));

struct SendState {
  mmsghdr msgs[kMaxBatch];
  iovec iovs[kMaxBatch];
  sockaddr_storage names[kMaxBatch];
  alignas(cmsghdr) uint8_t control[kMaxBatch][kSendControl];
  bool hasSource[kMaxBatch];
  int firstDatagram[kMaxBatch + 1];  // datagram index where message m starts (and one past the end)
};

struct RecvState {
  mmsghdr msgs[kMaxBatch];
  iovec iovs[kMaxBatch];
  sockaddr_storage names[kMaxBatch];
  alignas(cmsghdr) uint8_t control[kMaxBatch][kRecvControl];
};

bool AllZero(const uint8_t* p, int n) {
  for (int i = 0; i < n; i++)
    if (p[i] != 0) return false;
  return true;
}

// Adds the local-address control message for the 16 bytes at `local` (v4-mapped for IPv4).
cmsghdr* AddSource(msghdr& h, cmsghdr* c, bool dualStack, const uint8_t* local) {
  if (dualStack) {
    c->cmsg_level = IPPROTO_IPV6;
    c->cmsg_type = IPV6_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in6_pktinfo));
    in6_pktinfo pi;
    memset(&pi, 0, sizeof(pi));
    memcpy(&pi.ipi6_addr, local, 16);
    memcpy(CMSG_DATA(c), &pi, sizeof(pi));
  } else {
    c->cmsg_level = IPPROTO_IP;
    c->cmsg_type = IP_PKTINFO;
    c->cmsg_len = CMSG_LEN(sizeof(in_pktinfo));
    in_pktinfo pi;
    memset(&pi, 0, sizeof(pi));
    memcpy(&pi.ipi_spec_dst, local + 12, 4);
    memcpy(CMSG_DATA(c), &pi, sizeof(pi));
  }
  h.msg_controllen += CMSG_SPACE(dualStack ? sizeof(in6_pktinfo) : sizeof(in_pktinfo));
  return c;
}

SendState sendState;
RecvState recvState;

bool WaitWritable(int fd) {
  pollfd p = {fd, POLLOUT, 0};
  return poll(&p, 1, kSendWaitMs) > 0;
}

}  // namespace

int UdpOpen(int port, int bufferBytes, uint32_t mark, UdpSocketInfo* out) {
  int r = OpenFamily(AF_INET6, port, bufferBytes, mark, out);
  if (r == -EAFNOSUPPORT || r == -EADDRNOTAVAIL) r = OpenFamily(AF_INET, port, bufferBytes, mark, out);
  return r;
}

int UdpSetMark(int fd, uint32_t mark) {
  return setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) == 0 ? 0 : -errno;
}

int UdpSetPmtuProbe(int fd, bool dualStack) {
  int v4 = IP_PMTUDISC_PROBE;
  if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &v4, sizeof(v4)) != 0) return -errno;
  if (dualStack) {
    int v6 = IPV6_PMTUDISC_PROBE;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &v6, sizeof(v6)) != 0) return -errno;
  }
  return 0;
}

int UdpRecvBatch(int fd, uint8_t* base, int slotSize, int slots, int32_t* lengths, int32_t* gso, uint8_t* addrs) {
  RecvState& s = recvState;
  if (slots > kMaxBatch) slots = kMaxBatch;
  for (int i = 0; i < slots; i++) {
    s.iovs[i].iov_base = base + static_cast<size_t>(i) * slotSize;
    s.iovs[i].iov_len = slotSize;
    msghdr& h = s.msgs[i].msg_hdr;
    h.msg_name = &s.names[i];
    h.msg_namelen = sizeof(sockaddr_storage);
    h.msg_iov = &s.iovs[i];
    h.msg_iovlen = 1;
    h.msg_control = s.control[i];
    h.msg_controllen = sizeof(s.control[i]);
    h.msg_flags = 0;
  }
  int n;
  do {
    n = recvmmsg(fd, s.msgs, slots, MSG_DONTWAIT, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
  for (int i = 0; i < n; i++) {
    msghdr& h = s.msgs[i].msg_hdr;
    // A truncated datagram is longer than any WireGuard message: report it as oversized.
    lengths[i] = (h.msg_flags & MSG_TRUNC) ? -1 : static_cast<int32_t>(s.msgs[i].msg_len);
    gso[i] = 0;
    uint8_t* addr = addrs + static_cast<size_t>(i) * kAddrLen;
    ToAddr18(s.names[i], addr);
    memset(addr + kRemoteLen, 0, kAddrLen - kRemoteLen);
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
        int size = 0;
        memcpy(&size, CMSG_DATA(c), sizeof(size));
        gso[i] = size;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof(pi));
        memcpy(addr + kRemoteLen, &pi.ipi6_addr, 16);
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof(pi));
        addr[kRemoteLen + 10] = 0xff;
        addr[kRemoteLen + 11] = 0xff;
        memcpy(addr + kRemoteLen + 12, &pi.ipi_addr, 4);
      }
    }
  }
  return n;
}

int UdpSendBatch(int fd, bool dualStack, bool gso, const uint8_t* const* bases, const uint8_t* which, const int32_t* offsets,
                 const int32_t* lengths, const uint8_t* addrs, int count, int* errors, int* gsoFailed, int* srcFailed) {
  SendState& s = sendState;
  *errors = 0;
  *gsoFailed = 0;
  *srcFailed = 0;
  if (count > kMaxBatch) count = kMaxBatch;
  for (int d = 0; d < count; d++) {
    s.iovs[d].iov_base = const_cast<uint8_t*>(bases[which ? which[d] : 0] + offsets[d]);
    s.iovs[d].iov_len = static_cast<size_t>(lengths[d]);
  }
  int m = 0;
  int i = 0;
  while (i < count) {
    const uint8_t* addr = addrs + static_cast<size_t>(i) * kAddrLen;
    int j = i + 1;
    size_t total = lengths[i];
    if (gso) {
      // Extend the run while the next datagram goes to the same address and has the first one's size
      // (only the run's last datagram may be shorter). Its segments are gathered from their iovecs.
      while (j < count && j - i < kMaxGsoSegments && lengths[j - 1] == lengths[i] && lengths[j] <= lengths[i] &&
             total + lengths[j] <= kMaxGsoBytes &&
             memcmp(addrs + static_cast<size_t>(j) * kAddrLen, addr, kAddrLen) == 0) {
        total += lengths[j];
        j++;
      }
    }
    msghdr& h = s.msgs[m].msg_hdr;
    socklen_t nameLen = 0;
    if (!FromAddr18(addr, dualStack, &s.names[m], &nameLen)) {
      *errors += j - i;
      i = j;
      continue;
    }
    h.msg_name = &s.names[m];
    h.msg_namelen = nameLen;
    h.msg_iov = &s.iovs[i];
    h.msg_iovlen = static_cast<size_t>(j - i);
    h.msg_flags = 0;
    const uint8_t* local = addr + kRemoteLen;
    s.hasSource[m] = !AllZero(local, 16);
    if (j - i > 1 || s.hasSource[m]) {
      memset(s.control[m], 0, sizeof(s.control[m]));
      h.msg_control = s.control[m];
      h.msg_controllen = sizeof(s.control[m]);  // for CMSG_FIRSTHDR; set to what is used below
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      h.msg_controllen = 0;
      if (j - i > 1) {
        c->cmsg_level = IPPROTO_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t seg = static_cast<uint16_t>(lengths[i]);
        memcpy(CMSG_DATA(c), &seg, sizeof(seg));
        h.msg_controllen += CMSG_SPACE(sizeof(uint16_t));
        c = reinterpret_cast<cmsghdr*>(s.control[m] + CMSG_SPACE(sizeof(uint16_t)));
      }
      if (s.hasSource[m]) AddSource(h, c, dualStack, local);
    } else {
      h.msg_control = nullptr;
      h.msg_controllen = 0;
    }
    s.firstDatagram[m] = i;
    m++;
    i = j;
  }
  s.firstDatagram[m] = count;

  int sent = 0;
  int done = 0;
  bool waited = false;
  while (done < m) {
    int n = sendmmsg(fd, s.msgs + done, m - done, 0);
    if (n > 0) {
      for (int k = done; k < done + n; k++) sent += s.firstDatagram[k + 1] - s.firstDatagram[k];
      done += n;
      waited = false;
      continue;
    }
    if (errno == EINTR) continue;
    if ((errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) && !waited) {
      waited = true;
      if (WaitWritable(fd)) continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;  // still full: drop the rest
    int first = s.firstDatagram[done];
    int last = s.firstDatagram[done + 1];
    if (s.hasSource[done] && (errno == EINVAL || errno == EADDRNOTAVAIL || errno == ENETUNREACH)) {
      // Not too sticky: the local address is gone (or cannot reach the peer now). Send again with
      // no source (keeping a GSO segment size) and let the peer's next packet teach the new one.
      (*srcFailed)++;
      msghdr& h = s.msgs[done].msg_hdr;
      s.hasSource[done] = false;
      if (last - first > 1) h.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      else {
        h.msg_control = nullptr;
        h.msg_controllen = 0;
      }
      continue;
    }
    if (last - first > 1) {
      // The kernel refused a GSO send (EIO/EINVAL on a path without checksum offload): tell the
      // caller to stop asking for GSO and send these one by one.
      *gsoFailed = 1;
      msghdr& h = s.msgs[done].msg_hdr;
      for (int d = first; d < last; d++) {
        if (sendto(fd, s.iovs[d].iov_base, s.iovs[d].iov_len, 0, static_cast<sockaddr*>(h.msg_name), h.msg_namelen) >= 0) sent++;
        else (*errors)++;
      }
    } else {
      (*errors)++;  // refused (no route, unreachable...): skip this one
    }
    done++;
  }
  return sent;
}

}  // namespace meshd
