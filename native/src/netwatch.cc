// Route netlink notifications (RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR): the daemon asks
// "did a link or an address change?" with one recv that says EAGAIN, instead of reading sysfs and
// listing every interface address on each check. What changed is not parsed here: any notification
// makes the caller look for itself, as it did on every check before.
#include "netwatch.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

namespace meshd {

int NetwatchOpen() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -errno;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) < 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

// At most this many reads per call: a host whose links change faster than a check reads them still
// gets its check back; the rest waits for the next one (or is lost: ENOBUFS, counted as a change).
constexpr int kMaxReads = 1024;

int NetwatchDrain(int fd) {
  alignas(nlmsghdr) char buf[8192];
  int n = 0;
  for (int reads = 0; reads < kMaxReads; reads++) {
    ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (r > 0) {
      n++;
      continue;
    }
    if (r == 0) return n;
    if (errno == EINTR) continue;
    if (errno == ENOBUFS) {  // the kernel dropped notifications: something changed
      n++;
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return n;
    return -errno;
  }
  return n;
}

}  // namespace meshd
