// pybridge/interpreters.hpp: sub-interpreters, their scopes, and pools of them.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_INTERPRETERS_HPP
#define PYBRIDGE_INTERPRETERS_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "pybridge.h"
#include "errors.hpp"
#include "gil.hpp"
#include "timeouts.hpp"

namespace pybridge {

namespace detail {

// An owned interpreter or pool handle (0: none) that `Destroy`
// (pyb_interpreter_destroy, pyb_pool_destroy) ends. Ending one waits for
// threads inside it, so every wait has a bound: the one given to destroy()
// or try_destroy(), else destroy_timeout() when the destructor (or a move
// assignment onto a live one) ends it.
template <class Handle, pyb_status (*Destroy)(Handle, uint32_t)>
class DestroyedHandle {
 public:
  // The bound of the destructor's wait unless set_destroy_timeout() changed it.
  static constexpr std::chrono::milliseconds default_destroy_timeout{10000};

  DestroyedHandle(const DestroyedHandle &) = delete;
  DestroyedHandle &operator=(const DestroyedHandle &) = delete;

  // Destroys it now, waiting at most `timeout`; throws Error on failure (see
  // try_destroy()).
  template <class Rep, class Period>
  void destroy(std::chrono::duration<Rep, Period> timeout) {
    check(try_destroy(timeout));
  }
  // Destroys it now, waiting at most `timeout`, and returns the status
  // instead of throwing: PYB_OK (this object is empty now), PYB_E_TIMEOUT
  // (nothing changed), PYB_E_SHUTDOWN_COMMITTED (its end began and carries
  // on; destroy again to wait for it), PYB_E_WOULD_DEADLOCK (called from
  // inside), PYB_E_BAD_HANDLE (empty, or already ended).
  template <class Rep, class Period>
  [[nodiscard]] pyb_status try_destroy(std::chrono::duration<Rep, Period> timeout) noexcept {
    pyb_status status = Destroy(handle_, to_timeout_ms(timeout));
    if (status == PYB_OK) {
      handle_ = 0;
    }
    return status;
  }
  // How long the destructor, and a move assignment onto a live object, wait
  // at most for the end (default_destroy_timeout unless set). When the bound
  // passes they give up quietly: what is still running is left to the
  // engine's shutdown, which ends it.
  std::chrono::milliseconds destroy_timeout() const noexcept { return destroy_timeout_; }
  void set_destroy_timeout(std::chrono::milliseconds timeout) noexcept { destroy_timeout_ = timeout; }

 protected:
  DestroyedHandle() noexcept = default;
  explicit DestroyedHandle(Handle owned) noexcept : handle_(owned) {}
  DestroyedHandle(DestroyedHandle &&other) noexcept
      : handle_(other.handle_), destroy_timeout_(other.destroy_timeout_) {
    other.handle_ = 0;
  }
  // Ends the held one (waiting at most destroy_timeout()), then takes over `other`.
  DestroyedHandle &operator=(DestroyedHandle &&other) noexcept {
    if (this != &other) {
      end_quietly();
      handle_ = other.handle_;
      destroy_timeout_ = other.destroy_timeout_;
      other.handle_ = 0;
    }
    return *this;
  }
  // Never throws; waits at most destroy_timeout().
  ~DestroyedHandle() { end_quietly(); }

  Handle handle_ = 0;

 private:
  void end_quietly() noexcept {
    if (handle_ != 0) {
      (void)Destroy(handle_, to_timeout_ms(destroy_timeout_));
      handle_ = 0;
    }
  }
  std::chrono::milliseconds destroy_timeout_ = default_destroy_timeout;
};

}  // namespace detail

// A sub-interpreter (pyb_interpreter_new): its own GIL by default (CPython
// 3.12+), or the main one's with shared_gil. Move-only. The destructor
// destroys it, waiting at most destroy_timeout() (10 s unless
// set_destroy_timeout() changed it) and never throwing; call destroy() or
// try_destroy() to choose the bound and see the outcome. Object handles made
// inside belong to it: use them only inside it (PYB_E_WRONG_INTERPRETER).
class Interpreter : public detail::DestroyedHandle<pyb_interpreter, pyb_interpreter_destroy> {
 public:
  enum class GilMode { own, shared };

  explicit Interpreter(GilMode gil = GilMode::own) {
    pyb_interpreter_config config{};
    detail::check(pyb_interpreter_config_default(&config));
    if (gil == GilMode::shared) {
      config.flags |= PYB_INTERPRETER_SHARED_GIL;
    }
    detail::check(pyb_interpreter_new(&config, &handle_));
  }
  // Adopts a handle (one borrowed from a pool is adopted by Pool::Lease instead).
  static Interpreter adopt(pyb_interpreter handle) noexcept { return Interpreter(handle); }
  Interpreter(Interpreter &&) noexcept = default;
  // Destroys the interpreter this one held (waiting at most its
  // destroy_timeout()), then takes over `other`'s.
  Interpreter &operator=(Interpreter &&) noexcept = default;

  // A GIL scope inside an interpreter (pyb_interpreter_enter): pybridge calls
  // on this thread work there until the scope ends. A GilScope: ends and
  // moves like a Gil.
  class Scope : public GilScope {
   public:
    explicit Scope(const Interpreter &interpreter) : Scope(interpreter.capi()) {}
    explicit Scope(pyb_interpreter handle)
        : GilScope([handle](pyb_gil *out) { return pyb_interpreter_enter(handle, out); }) {}
    Scope(Scope &&) noexcept = default;
    Scope &operator=(Scope &&) noexcept = default;
  };

  Scope enter() const { return Scope(*this); }

  pyb_interpreter capi() const noexcept { return handle_; }

 private:
  explicit Interpreter(pyb_interpreter handle) noexcept : DestroyedHandle(handle) {}
};

// A pool of own-GIL interpreters, each set up by the same code (pyb_pool_new).
// Borrow one with lease(): the Lease gives it back when it ends. Move-only.
// The destructor destroys the pool, waiting at most destroy_timeout() (10 s
// unless set_destroy_timeout() changed it) for leases to end and never
// throwing; call destroy() or try_destroy() to choose the bound and see the
// outcome (PYB_E_TIMEOUT: a lease did not end in time, nothing changed).
class Pool : public detail::DestroyedHandle<pyb_pool, pyb_pool_destroy> {
 public:
  Pool(size_t count, const std::string &setup_code) {
    detail::check(pyb_pool_new(count, setup_code.empty() ? nullptr : setup_code.c_str(), &handle_));
  }
  Pool(Pool &&) noexcept = default;
  // Destroys the pool this one held (waiting at most its destroy_timeout()),
  // then takes over `other`'s.
  Pool &operator=(Pool &&) noexcept = default;

  // A borrowed interpreter, entered on this thread for the lease's life. Ending
  // it (never blocks) ends the scope, then gives the interpreter back.
  // Move-only.
  class Lease {
   public:
    Lease(const Lease &) = delete;
    Lease &operator=(const Lease &) = delete;
    Lease(Lease &&other) noexcept
        : pool_(other.pool_), interpreter_(other.interpreter_), scope_(std::move(other.scope_)) {
      other.interpreter_ = 0;
      other.scope_.reset();
    }
    // Ends this lease (its scope, then the borrow), then takes over `other`.
    // The scopes rule applies: assign an outer lease onto an inner one.
    Lease &operator=(Lease &&other) noexcept {
      if (this != &other) {
        end();
        pool_ = other.pool_;
        interpreter_ = other.interpreter_;
        scope_ = std::move(other.scope_);
        other.interpreter_ = 0;
        other.scope_.reset();
      }
      return *this;
    }
    ~Lease() { end(); }
    pyb_interpreter capi() const noexcept { return interpreter_; }

   private:
    friend class Pool;
    Lease(pyb_pool pool, pyb_interpreter interpreter)
        : pool_(pool), interpreter_(interpreter) {
      try {
        scope_.emplace(interpreter);
      } catch (...) {
        (void)pyb_pool_return(pool_, interpreter_);
        throw;
      }
    }
    void end() noexcept {
      scope_.reset();
      if (interpreter_ != 0) {
        (void)pyb_pool_return(pool_, interpreter_);
        interpreter_ = 0;
      }
    }
    pyb_pool pool_ = 0;
    pyb_interpreter interpreter_ = 0;
    std::optional<Interpreter::Scope> scope_;
  };

  // Borrows a free interpreter, waiting at most `timeout` (Error PYB_E_TIMEOUT
  // after), and enters it on this thread.
  template <class Rep, class Period>
  Lease lease(std::chrono::duration<Rep, Period> timeout) const {
    pyb_interpreter interpreter = 0;
    detail::check(pyb_pool_borrow(handle_, detail::to_timeout_ms(timeout), &interpreter));
    return Lease(handle_, interpreter);
  }

  pyb_pool_stats stats() const {
    pyb_pool_stats out{};
    out.struct_size = sizeof out;
    detail::check(pyb_pool_stats_get(handle_, &out));
    return out;
  }

  pyb_pool capi() const noexcept { return handle_; }
};

}  // namespace pybridge

#endif  // PYBRIDGE_INTERPRETERS_HPP
