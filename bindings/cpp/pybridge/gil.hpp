// pybridge/gil.hpp: GIL scopes (Gil, and the token logic every scope shares) and AllowThreads.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_GIL_HPP
#define PYBRIDGE_GIL_HPP

#include "pybridge.h"
#include "errors.hpp"

namespace pybridge {

// What every GIL scope is (a Gil, an Interpreter::Scope): a token that
// pyb_gil_acquire or pyb_interpreter_enter wrote, given back once with
// pyb_gil_release when the scope ends. Scopes nest; end them on the thread
// that made them, innermost first. Move-only: moving keeps the scope on the
// same thread, and the moved-from object no longer holds it.
class GilScope {
 public:
  GilScope(const GilScope &) = delete;
  GilScope &operator=(const GilScope &) = delete;

  // Ends the scope now, reporting a misuse (wrong thread, out of order) as an
  // Error. Does nothing once the scope ended or moved away.
  void release() {
    if (active_) {
      active_ = false;
      detail::check(pyb_gil_release(token_));
    }
  }
  // True while this object holds its scope: not released, not moved from.
  bool active() const noexcept { return active_; }
  // The token, still owned by this object.
  pyb_gil capi() const noexcept { return token_; }

 protected:
  // Runs `open(&token)` (pyb_gil_acquire, or an enter) and holds the scope
  // it opened; throws its Error if it failed.
  template <class Open>
  explicit GilScope(Open open) {
    detail::check(open(&token_));
    active_ = true;
  }
  GilScope(GilScope &&other) noexcept : token_(other.token_), active_(other.active_) {
    other.active_ = false;
  }
  // Ends this scope first (if it is held), then takes over `other`'s. Since
  // scopes end innermost first, assign an outer scope onto an inner one: the
  // other way round ends the outer scope out of order, which pybridge
  // refuses (ignored here, as in the destructor; release() reports it).
  GilScope &operator=(GilScope &&other) noexcept {
    if (this != &other) {
      end();
      token_ = other.token_;
      active_ = other.active_;
      other.active_ = false;
    }
    return *this;
  }
  // Not virtual: a GilScope is never deleted through a pointer to it (the
  // constructors are protected).
  ~GilScope() { end(); }

 private:
  void end() noexcept {
    if (active_) {
      active_ = false;
      (void)pyb_gil_release(token_);
    }
  }
  pyb_gil token_ = 0;
  bool active_ = false;
};

// Takes the GIL for this thread for its lifetime (pyb_gil_acquire); a
// GilScope. Throws Error with PYB_E_NOT_INITIALIZED or PYB_E_SHUTTING_DOWN
// when the engine is not accepting GIL requests.
class Gil : public GilScope {
 public:
  Gil() : GilScope(pyb_gil_acquire) {}
  Gil(Gil &&) noexcept = default;
  Gil &operator=(Gil &&) noexcept = default;

  // True when the calling thread holds the GIL (through pybridge or otherwise).
  static bool held() noexcept { return pyb_gil_held() != 0; }
};

// Releases the GIL this thread holds (all nesting levels) for its lifetime, and
// takes it back when destroyed (blocking until it is free, with no bound, as
// Py_END_ALLOW_THREADS does: the scope it sits in needs the GIL): wrap long native
// work in it. Inside, touch no Python objects except through pybridge calls.
// On a thread without the GIL it does nothing. Bound to its thread: neither
// copyable nor movable.
class AllowThreads {
 public:
  AllowThreads() { detail::check(pyb_begin_allow_threads(&token_)); }
  AllowThreads(const AllowThreads &) = delete;
  AllowThreads &operator=(const AllowThreads &) = delete;
  ~AllowThreads() { (void)pyb_end_allow_threads(token_); }

 private:
  pyb_thread_token token_ = 0;
};

}  // namespace pybridge

#endif  // PYBRIDGE_GIL_HPP
