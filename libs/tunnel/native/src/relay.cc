// SocketRelay: moves bytes between two connected TCP sockets without JavaScript per chunk.
//
// sni-proxy routes a connection once (PROXY header, ClientHello or CONNECT head, in JS) and then only
// copies bytes both ways for the connection's lifetime. Through Node streams that costs a JS 'data'
// event, a Buffer, a stream write and its bookkeeping per chunk on the one event loop every tunnel
// shares; a keepalive of 1,000 tunnels is 16,000 such chunks a second. Here the copying happens in
// C++ on the same libuv loop: a uv_poll per socket, recv() into one scratch buffer and send() straight
// on, no allocation unless the receiver is full.
//
// Handover: the constructor dup()s both descriptors (F_DUPFD_CLOEXEC) and JS then destroys its own
// net.Sockets. libuv unregisters and closes its descriptors; the connections stay open through the
// dups, which this relay alone owns and closes. Bytes JS already holds (the 200 of a CONNECT, the
// ClientHello, anything read past the head) are passed in and written first, in order.
//
// Flow control: a side is read only while nothing is waiting to be written to the other side; a
// short send keeps the rest (at most one read, 64 KiB) and switches to waiting for writability. So
// at most one read's worth sits in user space per direction; the rest stays in the kernel's buffers
// (which sni-proxy caps: SO_RCVBUF, TCP_NOTSENT_LOWAT) and TCP pushes back on the sender.
//
// Half-close as Node's allowHalfOpen pipe: EOF from one side becomes shutdown(SHUT_WR) on the other
// once its pending bytes are written; the relay ends when both directions ended, on the first error
// (reset, EPIPE), after idleMs without a byte either way, or on stop(). The end closes both
// descriptors and calls onEnd(reason, errno, bytesAtoB, bytesBtoA) once, from the loop or from stop().
#include <napi.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

namespace rvpn {

class SocketRelay;

namespace {

// one read: what waits in user space for a full receiver, per direction (as a stream pipe's 64 KiB chunk)
constexpr size_t kScratch = 64 * 1024;
// reads per readiness event and side: a busy tunnel must not hold the loop from the others
constexpr int kReadsPerWake = 8;
uint8_t g_scratch[kScratch];
// process-wide, for metrics: bytes read from side A (the client) / side B (the upstream), relays
uint64_t g_bytes_a = 0, g_bytes_b = 0, g_started = 0, g_active = 0;

struct Side {
  int fd = -1;
  uv_poll_t poll;
  int events = 0;            // what the poll watches now
  bool eof = false;          // EOF read from this socket
  bool shut = false;         // our writes into this socket are shut down
  std::vector<uint8_t> out;  // bytes waiting to be written into this socket (from the other side)
  size_t off = 0;
  uint64_t read_bytes = 0;
  bool pending() const { return off < out.size(); }
};

struct Relay {
  Side side[2];
  uv_timer_t timer;
  bool has_timer = false;
  uint64_t idle_ms = 0;
  uint64_t last_active = 0;
  bool ended = false;
  int open_handles = 0;
  uv_loop_t* loop = nullptr;
  SocketRelay* owner = nullptr;
};

void OnPoll(uv_poll_t* h, int status, int events);
void End(Relay* r, const char* reason, int err, bool from_js);

int SideOf(Relay* r, uv_poll_t* h) { return h == &r->side[0].poll ? 0 : 1; }

void Touch(Relay* r) { r->last_active = uv_now(r->loop); }

void OnHandleClosed(uv_handle_t* h) {
  Relay* r = static_cast<Relay*>(h->data);
  if (--r->open_handles == 0) delete r;
}

// What each side's poll must watch: readable while its bytes can go on (nothing queued for the other
// side), writable while bytes wait for it.
void Update(Relay* r) {
  for (int i = 0; i < 2; i++) {
    Side& s = r->side[i];
    Side& o = r->side[1 - i];
    int ev = 0;
    if (!s.eof && !o.pending() && !o.shut) ev |= UV_READABLE;
    if (s.pending()) ev |= UV_WRITABLE;
    if (ev == s.events) continue;
    s.events = ev;
    if (ev == 0) uv_poll_stop(&s.poll);
    else uv_poll_start(&s.poll, ev, OnPoll);
  }
}

// Shuts down writes into side i once the other side reached EOF and nothing waits for i.
bool MaybeShut(Relay* r, int i) {
  Side& s = r->side[i];
  if (s.shut || s.pending() || !r->side[1 - i].eof) return true;
  s.shut = true;
  if (shutdown(s.fd, SHUT_WR) < 0 && errno != ENOTCONN) {
    End(r, "error", errno, false);
    return false;
  }
  return true;
}

// Writes what waits for side i. False when the relay ended.
bool Flush(Relay* r, int i) {
  Side& s = r->side[i];
  while (s.pending()) {
    ssize_t w = send(s.fd, s.out.data() + s.off, s.out.size() - s.off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      End(r, "error", errno, false);
      return false;
    }
    s.off += static_cast<size_t>(w);
    Touch(r);
  }
  s.out.clear();
  s.out.shrink_to_fit();
  s.off = 0;
  return MaybeShut(r, i);
}

// Reads side i and sends on to the other side. False when the relay ended.
bool Pump(Relay* r, int i) {
  Side& s = r->side[i];
  Side& o = r->side[1 - i];
  for (int k = 0; k < kReadsPerWake; k++) {
    ssize_t n = recv(s.fd, g_scratch, kScratch, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      End(r, "error", errno, false);
      return false;
    }
    if (n == 0) {
      s.eof = true;
      return MaybeShut(r, 1 - i);
    }
    s.read_bytes += static_cast<uint64_t>(n);
    (i == 0 ? g_bytes_a : g_bytes_b) += static_cast<uint64_t>(n);
    Touch(r);
    ssize_t w;
    do w = send(o.fd, g_scratch, static_cast<size_t>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        End(r, "error", errno, false);
        return false;
      }
      w = 0;
    }
    if (w < n) {
      o.out.assign(g_scratch + w, g_scratch + n);
      o.off = 0;
      return true;
    }
    // a short read drained the socket: another recv() would only say EAGAIN
    if (static_cast<size_t>(n) < kScratch) return true;
  }
  return true;
}

bool Done(Relay* r) {
  return r->side[0].eof && r->side[1].eof && !r->side[0].pending() && !r->side[1].pending();
}

void OnPoll(uv_poll_t* h, int status, int events) {
  Relay* r = static_cast<Relay*>(h->data);
  if (r->ended) return;
  int i = SideOf(r, h);
  if (status < 0) {
    // libuv reports a socket error (EPOLLERR: a reset) as EBADF; the socket knows the real one
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(r->side[i].fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0 || soerr == 0) soerr = -status;
    End(r, "error", soerr, false);
    return;
  }
  if ((events & UV_WRITABLE) && !Flush(r, i)) return;
  if ((events & UV_READABLE) && !Pump(r, i)) return;
  if (Done(r)) {
    End(r, "closed", 0, false);
    return;
  }
  Update(r);
}

// A handover the relay cannot take: the JS side wraps it as RelayError (RVPN_ERR_RELAY_HANDOVER).
void ThrowHandover(Napi::Env env, const std::string& what, int err) {
  Napi::Error e = Napi::Error::New(env, "SocketRelay: " + what + ": " + strerror(err));
  e.Set("code", Napi::String::New(env, "RVPN_ERR_RELAY_HANDOVER"));
  e.Set("errno", Napi::Number::New(env, err));
  e.ThrowAsJavaScriptException();
}

void OnTimer(uv_timer_t* t) {
  Relay* r = static_cast<Relay*>(t->data);
  if (r->ended) return;
  uint64_t idle = uv_now(r->loop) - r->last_active;
  if (idle >= r->idle_ms) End(r, "idle", 0, false);
  else uv_timer_start(t, OnTimer, r->idle_ms - idle, 0);
}

}  // namespace

class SocketRelay : public Napi::ObjectWrap<SocketRelay> {
 public:
  static Napi::Object Init(Napi::Env env, Napi::Object exports) {
    Napi::Function ctor = DefineClass(env, "SocketRelay", {
      InstanceMethod("stop", &SocketRelay::Stop),
      InstanceMethod("stats", &SocketRelay::Stats),
    });
    exports.Set("SocketRelay", ctor);
    exports.Set("relayTotals", Napi::Function::New(env, Totals));
    return exports;
  }

  // new SocketRelay(fdA, fdB, toA: Buffer, toB: Buffer, idleMs, onEnd(reason, errno, aToB, bToA))
  explicit SocketRelay(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SocketRelay>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBuffer() || !info[3].IsBuffer() ||
        !info[4].IsNumber() || !info[5].IsFunction()) {
      Napi::TypeError::New(env, "SocketRelay(fdA: number, fdB: number, toA: Buffer, toB: Buffer, idleMs: number, onEnd: Function)").ThrowAsJavaScriptException();
      return;
    }
    int fds[2] = {info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value()};
    double idle = info[4].As<Napi::Number>().DoubleValue();
    if (fds[0] < 0 || fds[1] < 0 || fds[0] == fds[1] || !(idle >= 0)) {
      Napi::RangeError::New(env, "SocketRelay: two distinct descriptors and idleMs >= 0").ThrowAsJavaScriptException();
      return;
    }
    int dups[2] = {-1, -1};
    for (int i = 0; i < 2; i++) {
      int type = 0;
      socklen_t len = sizeof(type);
      if (getsockopt(fds[i], SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
          (dups[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, 0)) < 0) {
        int e = errno ? errno : ENOTSOCK;
        if (dups[0] >= 0) close(dups[0]);
        ThrowHandover(env, "descriptor " + std::to_string(fds[i]), e);
        return;
      }
      int fl = fcntl(dups[i], F_GETFL);
      if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(dups[i], F_SETFL, fl | O_NONBLOCK);
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    Relay* r = new Relay();
    r->loop = loop;
    for (int i = 0; i < 2; i++) {
      Side& s = r->side[i];
      s.fd = dups[i];
      int rc = uv_poll_init_socket(loop, &s.poll, s.fd);
      if (rc < 0) {
        // the first poll (if any) is closed through the loop, which then frees r; the dups go now
        if (i == 1) {
          r->open_handles = 1;
          uv_close(reinterpret_cast<uv_handle_t*>(&r->side[0].poll), OnHandleClosed);
        } else {
          delete r;
        }
        close(dups[0]);
        close(dups[1]);
        ThrowHandover(env, "uv_poll_init", -rc);
        return;
      }
      s.poll.data = r;
      Napi::Buffer<uint8_t> b = info[2 + i].As<Napi::Buffer<uint8_t>>();
      s.out.assign(b.Data(), b.Data() + b.Length());
    }
    r_ = r;
    r_->owner = this;
    r_->open_handles = 2;
    r_->idle_ms = static_cast<uint64_t>(idle);
    if (r_->idle_ms > 0) {
      uv_timer_init(loop, &r_->timer);
      r_->timer.data = r_;
      r_->has_timer = true;
      r_->open_handles++;
      uv_timer_start(&r_->timer, OnTimer, r_->idle_ms, 0);
    }
    Touch(r_);
    on_end_ = Napi::Persistent(info[5].As<Napi::Function>());
    g_started++;
    g_active++;
    Ref();  // the loop calls back into this object until the relay ends
    Update(r_);
  }

  ~SocketRelay() override {
    // an ended relay detached itself; one still running belongs to the loop (Ref() keeps us alive)
  }

  // Called once by End(): the relay is over, its descriptors are closed.
  void Ended(const char* reason, int err, uint64_t a_to_b, uint64_t b_to_a, bool from_js) {
    r_ = nullptr;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    std::initializer_list<napi_value> args = {Napi::String::New(env, reason), Napi::Number::New(env, err),
                                              Napi::Number::New(env, static_cast<double>(a_to_b)), Napi::Number::New(env, static_cast<double>(b_to_a))};
    Napi::FunctionReference cb = std::move(on_end_);
    Unref();
    // from the loop: MakeCallback runs microtasks afterwards, as a libuv callback into JS should
    if (from_js) cb.Call(Value(), args);
    else cb.MakeCallback(Value(), args);
  }

 private:
  static Napi::Value Totals(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("bytesA", Napi::Number::New(env, static_cast<double>(g_bytes_a)));
    o.Set("bytesB", Napi::Number::New(env, static_cast<double>(g_bytes_b)));
    o.Set("started", Napi::Number::New(env, static_cast<double>(g_started)));
    o.Set("active", Napi::Number::New(env, static_cast<double>(g_active)));
    return o;
  }

  // stop(): ends a running relay now (reason "stopped"), closing both connections; no-op after the end
  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (r_) End(r_, "stopped", 0, true);
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("running", Napi::Boolean::New(env, r_ != nullptr));
    if (r_) {
      o.Set("bytesAtoB", Napi::Number::New(env, static_cast<double>(r_->side[0].read_bytes)));
      o.Set("bytesBtoA", Napi::Number::New(env, static_cast<double>(r_->side[1].read_bytes)));
      o.Set("pendingToA", Napi::Number::New(env, static_cast<double>(r_->side[0].out.size() - r_->side[0].off)));
      o.Set("pendingToB", Napi::Number::New(env, static_cast<double>(r_->side[1].out.size() - r_->side[1].off)));
    }
    return o;
  }

  Relay* r_ = nullptr;
  Napi::FunctionReference on_end_;
};

namespace {

void End(Relay* r, const char* reason, int err, bool from_js) {
  if (r->ended) return;
  r->ended = true;
  g_active--;
  for (Side& s : r->side) {
    // uv_close stops the poll and drops the descriptor from libuv's epoll before it is closed
    uv_close(reinterpret_cast<uv_handle_t*>(&s.poll), OnHandleClosed);
    close(s.fd);
    s.fd = -1;
  }
  if (r->has_timer) uv_close(reinterpret_cast<uv_handle_t*>(&r->timer), OnHandleClosed);
  SocketRelay* owner = r->owner;
  r->owner = nullptr;
  // r is freed once its handles closed (a later loop turn); the owner no longer points at it
  if (owner) owner->Ended(reason, err, r->side[0].read_bytes, r->side[1].read_bytes, from_js);
}

}  // namespace

Napi::Object InitRelay(Napi::Env env, Napi::Object exports) { return SocketRelay::Init(env, exports); }

}  // namespace rvpn
