// TUN device primitives: open with IFF_TUN|IFF_NO_PI, non-blocking, close-on-exec, and optionally
// IFF_VNET_HDR with TSO/checksum offload (see vnet.h).
#pragma once
#include <string>

namespace meshd {

// Opens (creating if needed) the TUN interface `name`. On success returns the fd and writes the
// kernel's chosen name into `actual`; on failure returns -errno. With `offload`, asks for a
// virtio-net header on every packet and for TCP segmentation offload; *offloaded tells whether the
// kernel agreed (if not, the device is opened without the header), and *uso whether it took UDP
// segmentation offload as well (Linux 6.2+).
int TunOpen(const std::string& name, bool offload, std::string* actual, bool* offloaded, bool* uso);

}  // namespace meshd
