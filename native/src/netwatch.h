// Route netlink notifications of link and address changes, for the daemon's network checks.
#pragma once

namespace meshd {

// A non-blocking NETLINK_ROUTE socket subscribed to link (MTU, state) and IPv4/IPv6 address changes
// in the caller's network namespace: its fd, or -errno.
int NetwatchOpen();
// Reads the queued notifications without blocking (up to 1,024 reads a call): how many there were
// (a lost batch, ENOBUFS, counts as one), or -errno.
int NetwatchDrain(int fd);

}  // namespace meshd
