// pybridge/engine.hpp: the engine: Options, initialize, shutdown, process-wide stats.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_ENGINE_HPP
#define PYBRIDGE_ENGINE_HPP

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pybridge.h"
#include "errors.hpp"
#include "host_functions.hpp"
#include "timeouts.hpp"

namespace pybridge {

namespace detail {
// Pointers to the strings of `items`, which must outlive them.
inline std::vector<const char *> c_strings(const std::vector<std::string> &items) {
  std::vector<const char *> pointers;
  pointers.reserve(items.size());
  for (const std::string &item : items) {
    pointers.push_back(item.c_str());
  }
  return pointers;
}
}  // namespace detail

// How pyb_engine_initialize sets Python up. Empty strings mean "default".
struct Options {
  // The Python to run (pyb_config.python): a CPython executable (a venv's
  // bin/python too) or a libpython3.X.so path. Empty: PYBRIDGE_PYTHON, else the
  // Python pybridge was built with if it still exists, else python3 on PATH.
  std::string python;
  std::string python_home;
  std::string virtual_env;
  std::vector<std::string> module_search_paths;
  // sys.argv, taken as given; empty: CPython's [''] (pyb_config.argv).
  std::vector<std::string> argv;
  // Ignore PYTHON* environment variables, the user site and the current directory.
  bool isolated = false;
  // PYB_CONFIG_IGNORE_SIGPIPE: ignore SIGPIPE process-wide, as the python
  // program does, so a write to a closed pipe raises BrokenPipeError instead
  // of killing the host. Off by default: signals belong to the host.
  bool ignore_sigpipe = false;
  // How long to wait for a previous interpreter's daemon threads; nullopt: default.
  std::optional<std::chrono::milliseconds> previous_threads_timeout;
};

enum class State {
  uninitialized = PYB_STATE_UNINITIALIZED,
  running = PYB_STATE_RUNNING,
  shutting_down = PYB_STATE_SHUTTING_DOWN,
  // A fork() child of a process whose engine ran: closed for good (see pybridge.h).
  forked = PYB_STATE_FORKED,
};

enum class ShutdownMode {
  // Wait for host threads to leave their GIL scopes and for non-daemon Python threads.
  wait,
  // PYB_SHUTDOWN_INTERRUPT: first raise SystemExit in Python threads and
  // _pybridge_engine.ShutdownInterrupt in host threads running Python. Once a
  // thread is interrupted the shutdown cannot be called off: a deadline then
  // gives PYB_E_SHUTDOWN_COMMITTED (see pybridge.h).
  interrupt,
};

// The process's one engine. A cheap, copyable name for it: destroying an Engine
// does not shut anything down (call shutdown(), from any thread).
class Engine {
 public:
  Engine() noexcept = default;

  // Starts the engine (pyb_engine_initialize): Python runs on an engine-owned
  // thread. Idempotent while it runs. Any thread that holds no GIL scope.
  static Engine initialize(const Options &options = Options()) {
    pyb_config config{};
    detail::check(pyb_config_default(&config));
    config.struct_size = sizeof config;
    if (!options.python.empty()) {
      config.python = options.python.c_str();
    }
    if (!options.python_home.empty()) {
      config.python_home = options.python_home.c_str();
    }
    if (!options.virtual_env.empty()) {
      config.virtual_env = options.virtual_env.c_str();
    }
    const std::vector<const char *> paths = detail::c_strings(options.module_search_paths);
    config.module_search_paths = paths.empty() ? nullptr : paths.data();
    config.module_search_paths_len = paths.size();
    const std::vector<const char *> argv = detail::c_strings(options.argv);
    config.argv = argv.empty() ? nullptr : argv.data();
    config.argv_len = argv.size();
    if (options.isolated) {
      config.flags |= PYB_CONFIG_ISOLATED;
    }
    if (options.ignore_sigpipe) {
      config.flags |= PYB_CONFIG_IGNORE_SIGPIPE;
    }
    if (options.previous_threads_timeout) {
      config.previous_threads_timeout_ms = detail::to_timeout_ms(*options.previous_threads_timeout);
    }
    detail::check(pyb_engine_initialize(&config));
    return Engine();
  }

  static State state() noexcept { return static_cast<State>(pyb_engine_state()); }

  // Shuts down from any thread that holds no GIL scope and is in no
  // allow-threads region, waiting at most `timeout`. Throws Error:
  // PYB_E_TIMEOUT (the engine runs on unchanged), PYB_E_WOULD_DEADLOCK,
  // PYB_E_NOT_INITIALIZED.
  template <class Rep, class Period>
  void shutdown(std::chrono::duration<Rep, Period> timeout,
                ShutdownMode mode = ShutdownMode::wait) const {
    detail::check(try_shutdown(timeout, mode));
  }
  // Shuts down, waiting as long as it takes.
  void shutdown(ShutdownMode mode = ShutdownMode::wait) const {
    detail::check(pyb_engine_shutdown(PYB_TIMEOUT_INFINITE, flags(mode)));
  }
  // As shutdown(), returning the status instead of throwing.
  template <class Rep, class Period>
  [[nodiscard]] pyb_status try_shutdown(std::chrono::duration<Rep, Period> timeout,
                          ShutdownMode mode = ShutdownMode::wait) const noexcept {
    return pyb_engine_shutdown(detail::to_timeout_ms(timeout), flags(mode));
  }

  template <class F>
  void register_function(const char *module, const char *name, F &&function,
                         GilPolicy policy = GilPolicy::hold) const {
    pybridge::register_function(module, name, std::forward<F>(function), policy);
  }

 private:
  static uint32_t flags(ShutdownMode mode) noexcept {
    return mode == ShutdownMode::interrupt ? PYB_SHUTDOWN_INTERRUPT : 0;
  }
};

// Process-wide counters (pyb_stats_get). Any thread.
inline pyb_stats stats() {
  pyb_stats out{};
  out.struct_size = sizeof out;
  detail::check(pyb_stats_get(&out));
  return out;
}

}  // namespace pybridge

#endif  // PYBRIDGE_ENGINE_HPP
