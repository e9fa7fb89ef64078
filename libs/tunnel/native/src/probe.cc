// tcpProbe: one TCP connect from a chosen local port, answered on the loop, with no net.Socket.
//
// path-controller probes every path several times a second, for the life of the pod. Through
// net.connect each probe built a Socket (a Duplex with both stream states, listeners, a Timeout) and,
// for a refusal or an unreachable path, an Error with a formatted stack; about 16 KiB of garbage per
// probe, much of it promoted into V8's old space by the scavenges that happened while probes were in
// flight, so an idle path-controller's heap grew by 2 MiB a minute between full collections
// (`pnpm bench:memory`). Here a probe is a descriptor, a uv_poll, a uv_timer and one callback.
//
// What it does is what net.connect({ host, port, localPort }) did: a non-blocking socket of the
// address's family, SO_REUSEADDR and bind to the wildcard address and localPort when one is given (as
// libuv binds), connect(). Writability ends it; SO_ERROR says how (0: connected). A connected socket is
// closed with SO_LINGER 0 (an RST, no TIME_WAIT on a port that comes round again); a timeout closes
// the half-open one the same way. The callback gets 0, or the errno (ETIMEDOUT when timeoutMs passed),
// always from the loop, never from inside tcpProbe().
#include <napi.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace rvpn {

namespace {

struct Probe {
  int fd = -1;
  uv_poll_t poll;
  uv_timer_t timer;
  bool has_poll = false;
  int open_handles = 0;
  bool done = false;
  // set when the outcome was known before the loop saw anything (a failed bind or connect)
  bool settled = false;
  int result = 0;
  napi_env env = nullptr;
  Napi::FunctionReference cb;
};

uint64_t g_probes_active = 0;

void OnClosed(uv_handle_t* h) {
  Probe* p = static_cast<Probe*>(h->data);
  if (--p->open_handles == 0) delete p;
}

void Finish(Probe* p, int result) {
  if (p->done) return;
  p->done = true;
  g_probes_active--;
  if (p->has_poll) uv_close(reinterpret_cast<uv_handle_t*>(&p->poll), OnClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&p->timer), OnClosed);
  if (p->fd >= 0) {
    // an RST instead of a FIN: no TIME_WAIT keeps the local port (connected or still connecting)
    struct linger l = {1, 0};
    setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(p->fd);
    p->fd = -1;
  }
  Napi::Env env(p->env);
  Napi::HandleScope scope(env);
  Napi::FunctionReference cb = std::move(p->cb);
  // from the loop: MakeCallback runs the microtasks the callback queues (a Promise's resolve)
  cb.MakeCallback(env.Global(), {Napi::Number::New(env, result)});
}

void OnPoll(uv_poll_t* h, int status, int /*events*/) {
  Probe* p = static_cast<Probe*>(h->data);
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  // libuv reports EPOLLERR as a status; SO_ERROR holds the real cause (ECONNREFUSED, EHOSTUNREACH)
  if (err == 0 && status < 0) err = -status;
  Finish(p, err);
}

void OnTimer(uv_timer_t* t) {
  Probe* p = static_cast<Probe*>(t->data);
  Finish(p, p->settled ? p->result : ETIMEDOUT);
}

// tcpProbe(address: string (numeric IPv4 or IPv6), port, localPort (0: any), timeoutMs, cb(result))
Napi::Value TcpProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber() || !info[3].IsNumber() ||
      !info[4].IsFunction()) {
    Napi::TypeError::New(env, "tcpProbe(address: string, port: number, localPort: number, timeoutMs: number, cb: Function)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string addr = info[0].As<Napi::String>().Utf8Value();
  int port = info[1].As<Napi::Number>().Int32Value();
  int local_port = info[2].As<Napi::Number>().Int32Value();
  double timeout = info[3].As<Napi::Number>().DoubleValue();
  if (port < 1 || port > 65535 || local_port < 0 || local_port > 65535 || !(timeout >= 1)) {
    Napi::RangeError::New(env, "tcpProbe: port 1-65535, localPort 0-65535, timeoutMs >= 1").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  sockaddr_storage dst;
  sockaddr_storage src;
  memset(&dst, 0, sizeof(dst));
  memset(&src, 0, sizeof(src));
  socklen_t alen = 0;
  int family = AF_INET;
  sockaddr_in* d4 = reinterpret_cast<sockaddr_in*>(&dst);
  sockaddr_in6* d6 = reinterpret_cast<sockaddr_in6*>(&dst);
  if (inet_pton(AF_INET, addr.c_str(), &d4->sin_addr) == 1) {
    d4->sin_family = AF_INET;
    d4->sin_port = htons(static_cast<uint16_t>(port));
    sockaddr_in* s4 = reinterpret_cast<sockaddr_in*>(&src);
    s4->sin_family = AF_INET;
    s4->sin_port = htons(static_cast<uint16_t>(local_port));
    alen = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, addr.c_str(), &d6->sin6_addr) == 1) {
    family = AF_INET6;
    d6->sin6_family = AF_INET6;
    d6->sin6_port = htons(static_cast<uint16_t>(port));
    sockaddr_in6* s6 = reinterpret_cast<sockaddr_in6*>(&src);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(static_cast<uint16_t>(local_port));
    alen = sizeof(sockaddr_in6);
  } else {
    Napi::TypeError::New(env, "tcpProbe: " + addr + " is not an IPv4 or IPv6 address").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    // out of descriptors (EMFILE) and the like: the caller sees it as it saw net.connect's error
    int e = errno;
    Napi::Error err = Napi::Error::New(env, std::string("tcpProbe: socket: ") + strerror(e));
    err.Set("errno", Napi::Number::New(env, e));
    err.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int settled = -1;
  if (local_port > 0) {
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (bind(fd, reinterpret_cast<sockaddr*>(&src), alen) < 0) settled = errno;
  }
  if (settled < 0) {
    if (connect(fd, reinterpret_cast<sockaddr*>(&dst), alen) == 0) settled = 0;
    else if (errno != EINPROGRESS) settled = errno;
  }
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  Probe* p = new Probe();
  p->fd = fd;
  p->env = env;
  p->cb = Napi::Persistent(info[4].As<Napi::Function>());
  uv_timer_init(loop, &p->timer);
  p->timer.data = p;
  p->open_handles = 1;
  g_probes_active++;
  if (settled < 0) {
    int rc = uv_poll_init_socket(loop, &p->poll, fd);
    if (rc < 0) {
      settled = -rc;
    } else {
      p->poll.data = p;
      p->has_poll = true;
      p->open_handles++;
      uv_poll_start(&p->poll, UV_WRITABLE, OnPoll);
    }
  }
  if (settled >= 0) {
    // known now, told from the loop like every other outcome
    p->settled = true;
    p->result = settled;
    uv_timer_start(&p->timer, OnTimer, 0, 0);
  } else {
    // the loop's clock is cached at the start of each iteration: after a long stretch of JavaScript
    // in this one, a timeout counted from it would fire that much early (a probe missed while the
    // path was fine). Node's own timers refresh it the same way before they start.
    uv_update_time(loop);
    uv_timer_start(&p->timer, OnTimer, static_cast<uint64_t>(timeout), 0);
  }
  return env.Undefined();
}

Napi::Value ProbesActive(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(g_probes_active));
}

}  // namespace

Napi::Object InitProbe(Napi::Env env, Napi::Object exports) {
  exports.Set("tcpProbe", Napi::Function::New(env, TcpProbe));
  exports.Set("tcpProbesActive", Napi::Function::New(env, ProbesActive));
  return exports;
}

}  // namespace rvpn
