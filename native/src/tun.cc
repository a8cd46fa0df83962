// Opens a Linux TUN device. Everything else (addresses, routes, MTU) is configured from TypeScript.
#include "tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace meshd {

int TunOpen(const std::string& name, std::string* actual) {
  if (name.size() >= IFNAMSIZ) return -ENAMETOOLONG;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  actual->assign(ifr.ifr_name);
  return fd;
}

}  // namespace meshd
