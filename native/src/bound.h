// The data path's batch calls with their arrays bound once instead of passed on every call. On a
// cache that went cold over a few milliseconds of idle, each typed array an N-API call takes costs
// about a microsecond (node-addon-api's As<> makes two napi_get_typedarray_info calls per array),
// and node-addon-api allocates the argument list of a call with more than six arguments. Sparse
// traffic (a ping every 10 ms) pays that on every packet. Bound here:
//   aeadBindSeal(buf, offsets, lengths, params) + sealBound(key): SealBatch (batch.h), params =
//     Float64Array [receiver, counterLo, counterHi, mtu, start, count];
//   aeadBindOpen(buf, offsets, lengths, plain, counters, params) + openBound(key): OpenBatch,
//     params = [start, count];
//   udpSenderCreate(fd, buf, which, offsets, lengths, addrs, result) -> id, udpSenderExternal(id,
//     buf), udpSenderSend(id, count, flags), udpSenderClose(id): UdpSendBatch (udp.h) from a
//     socket's own send arrays, bases[0] its buffer and bases[1] the external one.
// The JavaScript side binds again whenever the arrays it would pass are not the bound ones. A
// binding holds its arrays until it is replaced (seal, open) or closed (a sender): at most one set
// each outlives the device that used it.
#pragma once
#include <napi.h>

namespace meshd {

void DefineBound(Napi::Env env, Napi::Object exports);

}  // namespace meshd
