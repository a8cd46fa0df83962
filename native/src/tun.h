// TUN device primitives: open with IFF_TUN|IFF_NO_PI, non-blocking, close-on-exec.
#pragma once
#include <string>

namespace meshd {

// Opens (creating if needed) the TUN interface `name`. On success returns the fd and
// writes the kernel's chosen name into `actual`; on failure returns -errno.
int TunOpen(const std::string& name, std::string* actual);

}  // namespace meshd
