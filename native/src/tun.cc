// Opens a Linux TUN device. Everything else (addresses, routes, MTU) is configured from TypeScript.
#include "tun.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vnet.h"

namespace meshd {

namespace {

// TUN_F_USO4 / TUN_F_USO6 (linux/if_tun.h since 6.2; older headers lack them).
constexpr unsigned int kTunUso4 = 0x20;
constexpr unsigned int kTunUso6 = 0x40;

int OpenWith(const std::string& name, short flags, std::string* actual) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = flags;
  strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  actual->assign(ifr.ifr_name);
  return fd;
}

}  // namespace

int TunOpen(const std::string& name, bool offload, std::string* actual, bool* offloaded, bool* uso) {
  *offloaded = false;
  *uso = false;
  if (name.size() >= IFNAMSIZ) return -ENAMETOOLONG;
  if (offload) {
    int fd = OpenWith(name, IFF_TUN | IFF_NO_PI | IFF_VNET_HDR, actual);
    if (fd >= 0) {
      int hdrLen = kVnetHdrLen;
      unsigned int features = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
      if (ioctl(fd, TUNSETVNETHDRSZ, &hdrLen) == 0) {
        // USO first; a kernel before 6.2 refuses the flags it does not know (EINVAL): TCP only then.
        if (ioctl(fd, TUNSETOFFLOAD, features | kTunUso4 | kTunUso6) == 0) {
          *offloaded = true;
          *uso = true;
          return fd;
        }
        if (ioctl(fd, TUNSETOFFLOAD, features) == 0) {
          *offloaded = true;
          return fd;
        }
      }
      close(fd);  // an old kernel: fall back to plain packets
    } else if (fd != -EINVAL) {
      return fd;
    }
  }
  return OpenWith(name, IFF_TUN | IFF_NO_PI, actual);
}

}  // namespace meshd
