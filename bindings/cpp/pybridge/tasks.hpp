// pybridge/tasks.hpp: Python awaitables run on the event loop as futures: Task, AsyncIterator.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_TASKS_HPP
#define PYBRIDGE_TASKS_HPP

#include <chrono>
#include <exception>
#include <future>
#include <optional>
#include <utility>

#include "pybridge.h"
#include "errors.hpp"
#include "objects.hpp"
#include "run.hpp"

namespace pybridge {

// Awaits a Python awaitable (a coroutine such as an `async def`'s call, an
// asyncio Task or Future) on pybridge's event loop (pyb_task_submit). The
// future holds the result, or an Error: the Python exception (status
// PYB_E_PYTHON, type and traceback), PYB_E_CANCELLED, or PYB_E_SHUTTING_DOWN
// when the engine shut down first. Throws Error if the submission fails
// (PYB_E_WRONG_TYPE for something not awaitable).
class Task {
 public:
  explicit Task(const Object &awaitable) {
    auto *state = new std::promise<Value>();
    future_ = state->get_future();
    pyb_status status = pyb_task_submit(awaitable.capi(), &Task::on_done, state, &id_);
    if (status != PYB_OK) {
      delete state;
      detail::check(status);
    }
  }

  // The outcome; blocks until it is there, once (the Value moves out). A
  // task not finished yet cannot finish while this thread holds the GIL the
  // event loop needs (inside a pybridge::Gil, in a host function that runs
  // with the GIL) or is the loop's own thread (a task callback): there it
  // throws Error with PYB_E_WOULD_DEADLOCK at once (pyb_task_check_wait)
  // instead of hanging. Close the Gil or wait inside AllowThreads.
  Value get() {
    if (!ready()) check_wait();
    return future_.get();
  }
  // Blocks until the task finished (true) or `timeout` passed (false); a
  // timeout of zero or less only looks. Throws as get() where waiting could
  // not end before the timeout.
  template <class Rep, class Period>
  bool wait_for(std::chrono::duration<Rep, Period> timeout) {
    if (ready()) return true;
    if (timeout <= timeout.zero()) return false;
    check_wait();
    return future_.wait_for(timeout) == std::future_status::ready;
  }
  // Blocks until the task finished; throws as get().
  void wait() {
    if (!ready()) check_wait();
    future_.wait();
  }
  // True when the outcome is there (get() will not block). Never blocks.
  bool ready() const {
    return future_.valid() &&
           future_.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }
  // The underlying future, for composing with other futures. Waiting on it
  // directly skips the would-deadlock check.
  std::future<Value> &future() noexcept { return future_; }
  // Asks the loop to cancel the task (pyb_task_cancel); does not wait.
  void cancel() const { detail::check(pyb_task_cancel(id_)); }
  pyb_task id() const noexcept { return id_; }

 private:
  static void on_done(pyb_task, pyb_status status, const pyb_value *result, void *user_data) {
    auto *state = static_cast<std::promise<Value> *>(user_data);
    try {
      if (status == PYB_OK) {
        state->set_value(Value::adopt(*result));
      } else {
        // The last error of this thread (the loop's) describes it, inside the callback.
        state->set_exception(std::make_exception_ptr(Error::last(status)));
      }
    } catch (...) {
      state->set_exception(std::current_exception());
    }
    delete state;
  }

  void check_wait() const {
    if (!future_.valid()) {
      throw Error(PYB_E_INVALID_ARGUMENT, "the task's outcome was taken already (Task::get)");
    }
    detail::check(pyb_task_check_wait());
  }

  std::future<Value> future_;
  pyb_task id_ = 0;
};

// Calls `callable(args...)` (an async def) and awaits its coroutine.
template <class... A>
Task call_async(const Object &callable, A &&...args) {
  return Task(callable.call(std::forward<A>(args)...).into_object());
}

// Iterates a Python async iterator (an async generator, or any object with
// __aiter__/__anext__) from C++: each step awaits __anext__() on pybridge's
// event loop, so the generator's code runs there and never on the caller's
// thread. One step at a time. Move-only.
class AsyncIterator {
 public:
  // aiter(iterable); throws Error (Python's TypeError) if it is not async-iterable.
  explicit AsyncIterator(const Object &iterable)
      : iterator_(import_module("builtins").call_method("aiter", iterable).into_object()) {}
  AsyncIterator(AsyncIterator &&) noexcept = default;
  AsyncIterator &operator=(AsyncIterator &&) noexcept = default;
  AsyncIterator(const AsyncIterator &) = delete;
  AsyncIterator &operator=(const AsyncIterator &) = delete;

  // The next item, or std::nullopt once the iterator is exhausted (and for
  // good after that). Blocks like Task::get(), and refuses a wait that could
  // never end (inside a Gil) with PYB_E_WOULD_DEADLOCK; the generator's
  // exception arrives as Error.
  std::optional<Value> next() {
    if (finished_) return std::nullopt;
    Task step = next_task();
    try {
      return step.get();
    } catch (const Error &error) {
      if (error.is("StopAsyncIteration")) {
        finished_ = true;
        return std::nullopt;
      }
      throw;
    }
  }
  // The next step as a Task, for waiting with a timeout or cancelling; its
  // end is an Error whose python_type() is "StopAsyncIteration".
  Task next_task() const { return Task(iterator_.call_method("__anext__").into_object()); }
  // Closes an async generator early (awaits its aclose(): its finally blocks run).
  void close() {
    if (finished_) return;
    finished_ = true;
    if (import_module("builtins").call_method("hasattr", iterator_, "aclose").to_bool()) {
      Task(iterator_.call_method("aclose").into_object()).get();
    }
  }

 private:
  Object iterator_;
  bool finished_ = false;
};

}  // namespace pybridge

#endif  // PYBRIDGE_TASKS_HPP
