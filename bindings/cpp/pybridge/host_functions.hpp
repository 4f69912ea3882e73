// pybridge/host_functions.hpp: C++ callables as Python functions: Args, Kwargs, register_function.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_HOST_FUNCTIONS_HPP
#define PYBRIDGE_HOST_FUNCTIONS_HPP

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <future>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>

#include "pybridge.h"
#include "errors.hpp"
#include "kinds.hpp"
#include "objects.hpp"

namespace pybridge {

// The arguments of a host function call. Views into Python objects: valid
// until the host function returns (use Arg::object() or copy to keep one).
class Arg {
 public:
  explicit Arg(const pyb_value &raw) noexcept : raw_(&raw) {}
  Kind kind() const noexcept { return static_cast<Kind>(raw_->tag); }
  bool is_none() const noexcept { return raw_->tag == PYB_VALUE_NONE; }
  int64_t to_int64() const { return detail::as_int64(*raw_); }
  double to_double() const { return detail::as_double(*raw_); }
  bool to_bool() const { return detail::as_bool(*raw_); }
  // The UTF-8 text of a str argument, valid until the host function returns.
  std::string_view string_view() const {
    if (raw_->tag == PYB_VALUE_STR) {
      return detail::view(raw_->data.str);
    }
    detail::wrong_type(raw_->tag, "a str");
  }
  std::string to_string() const {
    if (raw_->tag == PYB_VALUE_OBJECT) {
      return detail::string_of(raw_->data.object);  // a str subclass
    }
    return std::string(string_view());
  }
  std::vector<std::byte> to_bytes() const {
    if (raw_->tag == PYB_VALUE_OBJECT) {
      return detail::bytes_of(raw_->data.object);  // a bytearray or subclass
    }
    if (raw_->tag != PYB_VALUE_BYTES) {
      detail::wrong_type(raw_->tag, "bytes");
    }
    const std::byte *begin = reinterpret_cast<const std::byte *>(raw_->data.str.ptr);
    return std::vector<std::byte>(begin, begin + raw_->data.str.len);
  }
  // An owning handle to the argument as a Python object, usable after the call
  // (on any thread).
  Object object() const {
    pyb_object out = 0;
    if (raw_->tag == PYB_VALUE_OBJECT) {
      detail::check(pyb_object_clone(raw_->data.object, &out));
    } else {
      detail::check(pyb_object_from_value(raw_, &out));
    }
    return Object(out);
  }
  const pyb_value &capi() const noexcept { return *raw_; }

 private:
  const pyb_value *raw_;
};

class Args {
 public:
  Args(const pyb_value *args, size_t count) noexcept : args_(args), count_(count) {}
  size_t size() const noexcept { return count_; }
  Arg operator[](size_t i) const noexcept { return Arg(args_[i]); }
  // Like operator[], but throws PYB_E_INVALID_ARGUMENT when there is no argument i.
  Arg at(size_t i) const {
    if (i >= count_) {
      throw Error(PYB_E_INVALID_ARGUMENT, "expected at least " + std::to_string(i + 1) +
                                              " arguments, got " + std::to_string(count_));
    }
    return Arg(args_[i]);
  }
  // Throws PYB_E_INVALID_ARGUMENT unless exactly `n` arguments were passed.
  void expect(size_t n) const {
    if (count_ != n) {
      throw Error(PYB_E_INVALID_ARGUMENT, "expected " + std::to_string(n) +
                                              " arguments, got " + std::to_string(count_));
    }
  }

 private:
  const pyb_value *args_;
  size_t count_;
};

// The keyword arguments of a host function that takes them (registered with
// a function of (Args, Kwargs)): names and values in the order the caller
// gave them. Views, like Args: valid until the host function returns.
class Kwargs {
 public:
  Kwargs(const pyb_value *values, const pyb_str *names, size_t count) noexcept
      : values_(values), names_(names), count_(count) {}
  size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  // The i-th keyword's name (UTF-8) and value.
  std::string_view name(size_t i) const noexcept { return detail::view(names_[i]); }
  Arg value(size_t i) const noexcept { return Arg(values_[i]); }
  bool contains(std::string_view name) const noexcept { return index_of(name) < count_; }
  // The value of keyword `name`, if the caller gave it.
  std::optional<Arg> find(std::string_view name) const noexcept {
    size_t i = index_of(name);
    if (i == count_) return std::nullopt;
    return Arg(values_[i]);
  }
  // Like find(), but throws PYB_E_INVALID_ARGUMENT when `name` was not given.
  Arg at(std::string_view name) const {
    size_t i = index_of(name);
    if (i == count_) {
      throw Error(PYB_E_INVALID_ARGUMENT, "missing keyword argument '" + std::string(name) + "'");
    }
    return Arg(values_[i]);
  }
  // Throws PYB_E_INVALID_ARGUMENT naming the first keyword not in `known`:
  // what Python's own functions do with an unexpected keyword.
  void expect_only(std::initializer_list<std::string_view> known) const {
    for (size_t i = 0; i < count_; ++i) {
      bool listed = false;
      for (std::string_view name : known) listed = listed || name == this->name(i);
      if (!listed) {
        throw Error(PYB_E_INVALID_ARGUMENT,
                    "unexpected keyword argument '" + std::string(this->name(i)) + "'");
      }
    }
  }

 private:
  size_t index_of(std::string_view name) const noexcept {
    for (size_t i = 0; i < count_; ++i) {
      if (detail::view(names_[i]) == name) return i;
    }
    return count_;
  }
  const pyb_value *values_;
  const pyb_str *names_;
  size_t count_;
};

// Whether the GIL is held while a host function runs.
enum class GilPolicy {
  // The function runs with the GIL, like a C extension function.
  hold,
  // PYB_FN_RELEASE_GIL: other Python threads run meanwhile; the function touches
  // Python only through pybridge calls (which take the GIL themselves).
  release,
};

namespace detail {

// Where a host function's STR/BYTES result lives after the function returned.
// The C ABI copies such a result only after the return (pyb_host_fn), so its
// bytes cannot live in the call's frame; and they cannot live in the
// HostFunction either, since a GilPolicy::release function runs on several
// threads at once. One slot per thread is enough: the copy happens on the
// calling thread right after the return, before that thread can run another
// host function (a nested one returns before its caller writes its result).
// Returning the text as a new Python object instead would cost a GIL
// acquisition and an allocation per call. The slot holds only STR/BYTES
// (OBJECT results pass to pybridge), so its destruction at thread exit never
// calls into pybridge; it keeps the last result's bytes until the next one.
inline Value &result_slot() {
  thread_local Value slot;
  return slot;
}

[[nodiscard]] inline pyb_status fail_host(pyb_status status, const char *message) noexcept {
  if (pyb_set_error(message) != PYB_OK) {
    (void)pyb_set_error("C++ exception whose message is not UTF-8");
  }
  return status == PYB_OK ? PYB_E_PYTHON : status;
}

// True for a host function that takes keyword arguments: one of (Args, Kwargs).
template <class F>
constexpr bool takes_keywords = std::is_invocable_v<F &, Args, Kwargs>;

template <class R>
struct is_future : std::false_type {};
template <class T>
struct is_future<std::future<T>> : std::true_type {};

// Completes `promise` with what `future` gives (its value, or its exception's
// message as a HostError); a status from the completion (the awaiting code
// was cancelled, the engine ended) leaves nothing to do.
template <class T>
void complete_promise(pyb_promise promise, std::future<T> &future) noexcept {
  try {
    if constexpr (std::is_void_v<T>) {
      future.get();
      pyb_value none{};
      none.tag = PYB_VALUE_NONE;
      (void)pyb_promise_resolve(promise, &none);
    } else {
      Value value(future.get());
      pyb_value raw = value.capi();
      (void)pyb_promise_resolve(promise, &raw);
    }
  } catch (const Error &error) {
    (void)pyb_promise_reject(promise, error.message().c_str());
  } catch (const std::exception &error) {
    if (pyb_promise_reject(promise, error.what()) == PYB_E_INVALID_ARGUMENT) {
      (void)pyb_promise_reject(promise, "C++ exception whose message is not UTF-8");
    }
  } catch (...) {
    (void)pyb_promise_reject(promise, "unknown C++ exception");
  }
}

// What a host function returning std::future<T> gives Python: a promise's
// awaitable (pyb_promise_new), completed when `future` is ready: at once if
// it is already, else from a thread of its own that waits for it (one per
// call still waiting).
template <class T>
pyb_object awaitable_of(std::future<T> future) {
  if (!future.valid()) {
    throw Error(PYB_E_INVALID_ARGUMENT, "the host function returned an empty std::future");
  }
  pyb_object awaitable = 0;
  pyb_promise promise = 0;
  check(pyb_promise_new(nullptr, nullptr, &awaitable, &promise));
  if (future.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
    complete_promise(promise, future);
  } else {
    std::thread([future = std::move(future), promise]() mutable {
      complete_promise(promise, future);
    }).detach();
  }
  return awaitable;
}

template <class F>
struct HostFunction {
  F function;

  // Calls the function with its positional arguments and, when it takes
  // them, its keyword arguments (the last of `args`, named by pyb_host_keywords).
  static decltype(auto) invoke(F &function, const pyb_value *args, size_t nargs) {
    if constexpr (takes_keywords<F>) {
      const pyb_str *names = nullptr;
      size_t count = 0;
      check(pyb_host_keywords(&names, &count));
      return std::invoke(function, Args(args, nargs - count),
                         Kwargs(args + (nargs - count), names, count));
    } else {
      return std::invoke(function, Args(args, nargs));
    }
  }

  [[nodiscard]] static pyb_status call(const pyb_value *args, size_t nargs, pyb_value *result,
                         void *user_data) noexcept {
    try {
      F &function = static_cast<HostFunction *>(user_data)->function;
      using R = decltype(invoke(function, args, nargs));
      if constexpr (std::is_void_v<R>) {
        invoke(function, args, nargs);
      } else if constexpr (is_future<R>::value) {
        // pybridge takes over (and releases) an OBJECT result handle.
        result->tag = PYB_VALUE_OBJECT;
        result->data.object = awaitable_of(invoke(function, args, nargs));
      } else {
        Value value(invoke(function, args, nargs));
        if (value.kind() == Kind::object) {
          // pybridge takes over (and releases) an OBJECT result handle.
          result->tag = PYB_VALUE_OBJECT;
          result->data.object = value.into_object().into_raw();
        } else {
          Value &slot = result_slot();
          slot = std::move(value);
          *result = slot.capi();
        }
      }
      return PYB_OK;
    } catch (const Error &error) {
      return fail_host(error.status(), error.message().c_str());
    } catch (const std::exception &error) {
      return fail_host(PYB_E_PYTHON, error.what());
    } catch (...) {
      return fail_host(PYB_E_PYTHON, "unknown C++ exception");
    }
  }

  // Runs at shutdown on the engine thread; the capture's destructor must not
  // call into pybridge (so a capture must not own an Object then).
  static void free(void *user_data) noexcept { delete static_cast<HostFunction *>(user_data); }
};

}  // namespace detail

// Makes `function` callable from Python as `module.name(*args)`, or as
// `module.name(*args, **kwargs)` when `function` takes `(pybridge::Args,
// pybridge::Kwargs)` (PYB_FN_KEYWORDS); a function of `pybridge::Args` alone
// refuses keywords (Python's TypeError). It returns void (None), a Value or
// anything a Value is made from, or a std::future<T> of one: Python gets an
// awaitable (`await host.fetch(url)` in an async def) that completes on the
// awaiting event loop when the future is ready, with its value or, if it
// holds an exception, pybridge.HostError(what()). A future not ready at
// once is waited for on a thread of its own; cancelling the Python task
// does not cancel the future (std::future cannot be). Its captures live on the heap until the
// engine shuts down, when the engine thread destroys them. An exception it
// throws becomes pybridge.HostError(message) in Python (an Error keeps its
// status; one with PYB_E_WRONG_TYPE, such as to_int64() of a str argument, is
// a TypeError). Any thread.
template <class F>
void register_function(const char *module, const char *name, F &&function,
                       GilPolicy policy = GilPolicy::hold) {
  using Holder = detail::HostFunction<std::decay_t<F>>;
  static_assert(std::is_invocable_v<std::decay_t<F> &, Args> ||
                    detail::takes_keywords<std::decay_t<F>>,
                "a host function takes pybridge::Args, or pybridge::Args and pybridge::Kwargs");
  auto *holder = new Holder{std::forward<F>(function)};
  uint32_t flags = policy == GilPolicy::release ? PYB_FN_RELEASE_GIL : 0;
  if constexpr (detail::takes_keywords<std::decay_t<F>>) {
    flags |= PYB_FN_KEYWORDS;
  }
  pyb_status status = pyb_register_function(module, name, &Holder::call, holder, &Holder::free, flags);
  if (status != PYB_OK) {
    Error error = Error::last(status);
    delete holder;  // on error the user data stays ours
    throw error;
  }
}

}  // namespace pybridge

#endif  // PYBRIDGE_HOST_FUNCTIONS_HPP
