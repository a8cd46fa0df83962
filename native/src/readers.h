// The two readers the daemon polls: TunReader (packets from the TUN, TSO superpackets split into
// wire-sized packets) and UdpReader (datagrams via recvmmsg, with UDP GRO).
#pragma once
#include <napi.h>

namespace meshd {

Napi::Function DefineTunReader(Napi::Env env);
Napi::Function DefineUdpReader(Napi::Env env);

}  // namespace meshd
