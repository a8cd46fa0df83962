// PollReader<Derived>: the N-API object shared by the TUN and UDP readers. It watches an fd with
// uv_poll and, on each readiness event, lets Derived::ReadBatch() fill the preallocated buffers the
// JavaScript side handed over, then calls onPackets(count), then Derived::Drained(). A negative count
// is -errno for a read error (polling stops). No allocation or exception per packet.
#pragma once
#include <napi.h>
#include <uv.h>

namespace meshd {

template <class Derived>
class PollReader : public Napi::ObjectWrap<Derived> {
 public:
  explicit PollReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info), env_(info.Env()) {}
  ~PollReader() override { delete context_; }

 protected:
  static Napi::Function Define(Napi::Env env, const char* name) {
    return Napi::ObjectWrap<Derived>::DefineClass(
        env, name, {Napi::ObjectWrap<Derived>::InstanceMethod("start", &PollReader::Start),
                    Napi::ObjectWrap<Derived>::InstanceMethod("stop", &PollReader::Stop),
                    Napi::ObjectWrap<Derived>::InstanceMethod("readNow", &PollReader::ReadNow)});
  }

  // Called by Derived's constructor once its buffers are checked.
  void Init(int fd, Napi::Function onPackets, const char* resourceName) {
    fd_ = fd;
    callback_ = Napi::Persistent(onPackets);
    context_ = new Napi::AsyncContext(env_, resourceName);
  }

  int fd_ = -1;

 private:
  struct PollHandle {
    uv_poll_t poll;
    PollReader* owner;
  };

  Napi::Value Start(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (handle_ || !context_) return Napi::Number::New(env, handle_ ? 0 : UV_EINVAL);
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new PollHandle();
    handle_->owner = this;
    int r = uv_poll_init(loop, &handle_->poll, fd_);
    if (r == 0) r = uv_poll_start(&handle_->poll, UV_READABLE, OnReadable);
    if (r != 0) {
      delete handle_;
      handle_ = nullptr;
      return Napi::Number::New(env, r);
    }
    this->Ref();  // stay alive while polling
    return Napi::Number::New(env, 0);
  }

  // readNow() -> count: one batch read at once, from JavaScript, without waiting for the poll (the
  // caller hands the batch over itself); -errno for a read error, 0 if nothing was queued.
  Napi::Value ReadNow(const Napi::CallbackInfo& info) {
    int r = handle_ ? static_cast<Derived*>(this)->ReadBatch() : 0;
    static_cast<Derived*>(this)->Drained();
    return Napi::Number::New(info.Env(), r);
  }

  // stop(): no more reads or calls. The callback is let go too: it is a strong reference from here,
  // and a callback that refers (through its closure) to the object holding this reader would keep
  // both alive for good.
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopPolling();
    callback_.Reset();
    return info.Env().Undefined();
  }

  void StopPolling() {
    if (!handle_) return;
    uv_poll_stop(&handle_->poll);
    handle_->owner = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->poll), [](uv_handle_t* h) { delete reinterpret_cast<PollHandle*>(h); });
    handle_ = nullptr;
    this->Unref();
  }

  static void OnReadable(uv_poll_t* poll, int status, int events) {
    (void)events;
    auto* ph = reinterpret_cast<PollHandle*>(poll);
    if (!ph->owner) return;
    ph->owner->Drain(status);
  }

  void Drain(int status) {
    Napi::HandleScope scope(env_);
    int r = status < 0 ? status : static_cast<Derived*>(this)->ReadBatch();
    if (r > 0) Call(r);
    static_cast<Derived*>(this)->Drained();
    if (r < 0 && handle_) {
      StopPolling();
      Call(r);
      callback_.Reset();
    }
  }

  void Call(int value) {
    if (callback_.IsEmpty()) return;
    callback_.MakeCallback(this->Value(), {Napi::Number::New(env_, value)}, *context_);
  }

  Napi::Env env_;
  Napi::FunctionReference callback_;
  Napi::AsyncContext* context_ = nullptr;
  PollHandle* handle_ = nullptr;
};

}  // namespace meshd
