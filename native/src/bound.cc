// See bound.h. Every bound array is held by a strong reference until it is replaced or its sender
// closed, so the raw pointers taken at bind time stay valid (typed arrays over ArrayBuffers do not
// move their bytes). One Bound per Node environment (instance data), so worker threads would not
// share bindings.
#include "bound.h"

#include <errno.h>

#include <memory>
#include <vector>

#include "batch.h"
#include "udp.h"

namespace meshd {

namespace {

// The data (byte offset applied) and element count of a typed array of `type`: one N-API call,
// where node-addon-api's As<TypedArrayOf<T>>() makes two and IsTypedArray() a third.
bool TypedArrayOf(napi_env env, napi_value v, napi_typedarray_type type, void** data, size_t* elements) {
  napi_typedarray_type t;
  return napi_get_typedarray_info(env, v, &t, elements, data, nullptr, nullptr) == napi_ok && t == type;
}

// The 32-byte key argument, or nullptr.
const uint8_t* Key(const Napi::CallbackInfo& info) {
  void* d = nullptr;
  size_t n = 0;
  return TypedArrayOf(info.Env(), info[0], napi_uint8_array, &d, &n) && n == 32 ? static_cast<const uint8_t*>(d) : nullptr;
}

// An int32 argument (false if it is not a number).
bool Int(const Napi::CallbackInfo& info, size_t i, int32_t* out) { return napi_get_value_int32(info.Env(), info[i], out) == napi_ok; }

// A typed array's bytes, element count and the reference that keeps them alive.
template <class T>
struct Held {
  Napi::ObjectReference ref;
  T* data = nullptr;
  size_t elements = 0;

  bool Set(const Napi::Value& v, napi_typedarray_type type) {
    void* d = nullptr;
    size_t n = 0;
    if (!TypedArrayOf(v.Env(), v, type, &d, &n)) return false;
    ref = Napi::Persistent(v.As<Napi::Object>());
    data = static_cast<T*>(d);
    elements = n;
    return true;
  }
  void Clear() {
    ref.Reset();
    data = nullptr;
    elements = 0;
  }
};

// seal: params = [receiver, counterLo, counterHi, mtu, start, count].
struct SealBinding {
  Held<uint8_t> buf;
  Held<int32_t> offsets, lengths;
  Held<double> params;
};

// open: params = [start, count].
struct OpenBinding {
  Held<uint8_t> buf;
  Held<int32_t> offsets, lengths, plain;
  Held<double> counters, params;
};

struct Sender {
  int fd = -1;
  Held<uint8_t> own, external, which, addrs;
  Held<int32_t> offsets, lengths, result;
};

struct Bound {
  SealBinding seal;
  OpenBinding open;
  std::vector<std::unique_ptr<Sender>> senders;
};

Bound* Of(const Napi::CallbackInfo& info) { return info.Env().GetInstanceData<Bound>(); }

Napi::Number Num(const Napi::CallbackInfo& info, double v) { return Napi::Number::New(info.Env(), v); }

// [start, start + count) inside arrays of `n` elements.
bool InRange(double start, double count, size_t n) {
  return start >= 0 && count >= 0 && start + count <= static_cast<double>(n) && start == static_cast<int32_t>(start) &&
         count == static_cast<int32_t>(count);
}

// A whole number that fits 32 unsigned bits.
bool U32(double v) { return v >= 0 && v <= 4294967295.0 && v == static_cast<double>(static_cast<uint32_t>(v)); }

// aeadBindSeal(buf, offsets, lengths, params: Float64Array(6)) -> 0 or -EINVAL
Napi::Value BindSeal(const Napi::CallbackInfo& info) {
  SealBinding& s = Of(info)->seal;
  bool ok = s.buf.Set(info[0], napi_uint8_array) && s.offsets.Set(info[1], napi_int32_array) && s.lengths.Set(info[2], napi_int32_array) &&
            s.params.Set(info[3], napi_float64_array) && s.params.elements >= 6;
  if (!ok) s = SealBinding();
  return Num(info, ok ? 0 : -EINVAL);
}

// sealBound(key) -> bytes of all messages, or -1 (see SealBatch; nothing bound or bad parameters).
Napi::Value SealBound(const Napi::CallbackInfo& info) {
  const SealBinding& s = Of(info)->seal;
  const double* p = s.params.data;
  const uint8_t* key = p != nullptr ? Key(info) : nullptr;
  if (key == nullptr || !InRange(p[4], p[5], s.offsets.elements < s.lengths.elements ? s.offsets.elements : s.lengths.elements) ||
      !U32(p[0]) || !U32(p[1]) || !U32(p[2]) || !(p[3] >= 0 && p[3] <= 65535)) {
    return Num(info, -1);
  }
  int start = static_cast<int>(p[4]);
  uint64_t counter = static_cast<uint64_t>(p[1]) | (static_cast<uint64_t>(p[2]) << 32);
  long r = SealBatch(key, static_cast<uint32_t>(p[0]), counter, static_cast<int>(p[3]), s.buf.data, s.buf.elements, s.offsets.data + start,
                     s.lengths.data + start, static_cast<int>(p[5]));
  return Num(info, static_cast<double>(r));
}

// aeadBindOpen(buf, offsets, lengths, plain, counters, params: Float64Array(2)) -> 0 or -EINVAL
Napi::Value BindOpen(const Napi::CallbackInfo& info) {
  OpenBinding& o = Of(info)->open;
  bool ok = o.buf.Set(info[0], napi_uint8_array) && o.offsets.Set(info[1], napi_int32_array) && o.lengths.Set(info[2], napi_int32_array) &&
            o.plain.Set(info[3], napi_int32_array) && o.counters.Set(info[4], napi_float64_array) && o.params.Set(info[5], napi_float64_array) &&
            o.params.elements >= 2;
  if (!ok) o = OpenBinding();
  return Num(info, ok ? 0 : -EINVAL);
}

// openBound(key) -> count, or -1 (see OpenBatch; nothing bound or bad parameters).
Napi::Value OpenBound(const Napi::CallbackInfo& info) {
  const OpenBinding& o = Of(info)->open;
  const double* p = o.params.data;
  const uint8_t* key = p != nullptr ? Key(info) : nullptr;
  if (key == nullptr) return Num(info, -1);
  size_t n = o.offsets.elements;
  if (o.lengths.elements < n) n = o.lengths.elements;
  if (o.plain.elements < n) n = o.plain.elements;
  if (o.counters.elements < n) n = o.counters.elements;
  if (!InRange(p[0], p[1], n)) return Num(info, -1);
  int start = static_cast<int>(p[0]);
  int count = static_cast<int>(p[1]);
  OpenBatch(key, o.buf.data, o.buf.elements, o.offsets.data + start, o.lengths.data + start, count, o.plain.data + start,
            o.counters.data + start);
  return Num(info, count);
}

// The sender whose id is argument 0, or nullptr.
Sender* SenderAt(const Napi::CallbackInfo& info, int32_t* id = nullptr) {
  Bound* b = Of(info);
  int32_t i;
  if (!Int(info, 0, &i) || i < 0 || static_cast<size_t>(i) >= b->senders.size()) return nullptr;
  if (id != nullptr) *id = i;
  return b->senders[i].get();
}

// udpSenderCreate(fd, buf, which, offsets, lengths, addrs, result: Int32Array(3)) -> id, or -EINVAL
Napi::Value SenderCreate(const Napi::CallbackInfo& info) {
  Bound* b = Of(info);
  auto s = std::make_unique<Sender>();
  if (!Int(info, 0, &s->fd) || !s->own.Set(info[1], napi_uint8_array) || !s->which.Set(info[2], napi_uint8_array) ||
      !s->offsets.Set(info[3], napi_int32_array) || !s->lengths.Set(info[4], napi_int32_array) || !s->addrs.Set(info[5], napi_uint8_array) ||
      !s->result.Set(info[6], napi_int32_array) || s->result.elements < 3) {
    return Num(info, -EINVAL);
  }
  for (size_t i = 0; i < b->senders.size(); i++) {
    if (!b->senders[i]) {
      b->senders[i] = std::move(s);
      return Num(info, static_cast<double>(i));
    }
  }
  b->senders.push_back(std::move(s));
  return Num(info, static_cast<double>(b->senders.size() - 1));
}

// udpSenderExternal(id, buf | null) -> 0 or -EINVAL: the buffer `which` 1 refers to.
Napi::Value SenderExternal(const Napi::CallbackInfo& info) {
  Sender* s = SenderAt(info);
  if (s == nullptr) return Num(info, -EINVAL);
  if (info[1].IsNull() || info[1].IsUndefined()) {
    s->external.Clear();
    return Num(info, 0);
  }
  if (!s->external.Set(info[1], napi_uint8_array)) {
    s->external.Clear();
    return Num(info, -EINVAL);
  }
  return Num(info, 0);
}

// udpSenderSend(id, count, flags: 1 dual-stack | 2 GSO) -> datagrams the kernel took, or -EINVAL.
// Datagram i is bases[which[i]][offsets[i], +lengths[i]) to addrs[kAddrLen * i...]. result[0] =
// datagrams refused, result[1] = 1 if the kernel refused GSO (stop asking for it), result[2] = sends
// whose sticky source address was refused and went again without it (udp.h).
Napi::Value SenderSend(const Napi::CallbackInfo& info) {
  Sender* s = SenderAt(info);
  int32_t count;
  int32_t flags;
  if (s == nullptr || !Int(info, 1, &count) || !Int(info, 2, &flags)) return Num(info, -EINVAL);
  size_t n = static_cast<size_t>(count);
  if (count < 0 || n > s->offsets.elements || n > s->lengths.elements || n > s->which.elements || s->addrs.elements < n * kAddrLen) {
    return Num(info, -EINVAL);
  }
  const uint8_t* bases[2] = {s->own.data, s->external.data};
  size_t sizes[2] = {s->own.elements, s->external.elements};
  const uint8_t* w = s->which.data;
  const int32_t* off = s->offsets.data;
  const int32_t* len = s->lengths.data;
  for (int i = 0; i < count; i++) {
    if (w[i] > 1 || bases[w[i]] == nullptr || off[i] < 0 || len[i] < 0 || static_cast<size_t>(off[i]) + len[i] > sizes[w[i]]) {
      return Num(info, -EINVAL);
    }
  }
  int errors = 0;
  int gsoFailed = 0;
  int srcFailed = 0;
  int sent = UdpSendBatch(s->fd, (flags & 1) != 0, (flags & 2) != 0, bases, w, off, len, s->addrs.data, count, &errors, &gsoFailed, &srcFailed);
  s->result.data[0] = errors;
  s->result.data[1] = gsoFailed;
  s->result.data[2] = srcFailed;
  return Num(info, sent);
}

// udpSenderClose(id) -> undefined: its arrays are let go (the fd is closed by its owner).
Napi::Value SenderClose(const Napi::CallbackInfo& info) {
  int32_t id;
  if (SenderAt(info, &id) != nullptr) Of(info)->senders[id].reset();
  return info.Env().Undefined();
}

}  // namespace

void DefineBound(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new Bound());
  using Fn = Napi::Value (*)(const Napi::CallbackInfo&);
  const struct {
    const char* name;
    Fn fn;
  } fns[] = {{"aeadBindSeal", BindSeal},       {"sealBound", SealBound},           {"aeadBindOpen", BindOpen},
             {"openBound", OpenBound},         {"udpSenderCreate", SenderCreate},  {"udpSenderExternal", SenderExternal},
             {"udpSenderSend", SenderSend},    {"udpSenderClose", SenderClose}};
  for (const auto& f : fns) exports.Set(f.name, Napi::Function::New(env, f.fn, f.name));
}

}  // namespace meshd
