// pybridge/gil_stats.hpp: GIL statistics: how long host threads waited for and held GILs.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_GIL_STATS_HPP
#define PYBRIDGE_GIL_STATS_HPP

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "pybridge.h"
#include "errors.hpp"

namespace pybridge {

// GIL statistics (pyb_gil_stats_*): how long host threads waited for and held
// GILs. Off until enabled (or PYBRIDGE_GIL_STATS=1 at engine start). Any thread.
inline void enable_gil_stats(bool on = true) { detail::check(pyb_gil_stats_enable(on)); }

// Forgets everything recorded so far. Any thread.
inline void reset_gil_stats() { detail::check(pyb_gil_stats_reset()); }

// All host threads together and each live one, read at one moment.
struct GilStats {
  pyb_gil_stats total{};
  std::vector<pyb_gil_stats> threads;

  // A fixed-width table, one row per thread and one for the total, then the
  // longest hold and its thread.
  std::string table() const {
    std::string out;
    char line[256];
    std::snprintf(line, sizeof line, "%-16s %8s %9s %10s %9s %9s %9s %10s %9s %9s %9s\n", "thread",
                  "tid", "acquires", "wait total", "wait p50", "wait p99", "wait max", "hold total",
                  "hold p50", "hold p99", "hold max");
    out += line;
    auto row = [&](const pyb_gil_stats &s, const char *name) {
      std::snprintf(line, sizeof line, "%-16.16s %8d %9llu %10s %9s %9s %9s %10s %9s %9s %9s\n", name,
                    s.os_thread_id, static_cast<unsigned long long>(s.acquisitions),
                    duration(s.wait_total_ns).c_str(), duration(s.wait_p50_ns).c_str(),
                    duration(s.wait_p99_ns).c_str(), duration(s.wait_max_ns).c_str(),
                    duration(s.hold_total_ns).c_str(), duration(s.hold_p50_ns).c_str(),
                    duration(s.hold_p99_ns).c_str(), duration(s.hold_max_ns).c_str());
      out += line;
    };
    for (const pyb_gil_stats &thread : threads) row(thread, thread.thread_name);
    row(total, "total");
    std::snprintf(line, sizeof line, "longest hold: %s by '%s' (tid %d)\n",
                  duration(total.hold_max_ns).c_str(), total.longest_hold_thread_name,
                  total.longest_hold_os_thread_id);
    out += line;
    return out;
  }

  // "thread,tid,acquisitions,wait_total_ns,...": one line per thread and the total.
  std::string csv() const {
    std::string out =
        "thread,tid,acquisitions,wait_total_ns,wait_p50_ns,wait_p90_ns,wait_p99_ns,wait_max_ns,"
        "hold_total_ns,hold_p50_ns,hold_p90_ns,hold_p99_ns,hold_max_ns\n";
    auto row = [&](const pyb_gil_stats &s, const char *name) {
      char line[512];
      std::snprintf(line, sizeof line, "%s,%d,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n",
                    name, s.os_thread_id, static_cast<unsigned long long>(s.acquisitions),
                    static_cast<unsigned long long>(s.wait_total_ns),
                    static_cast<unsigned long long>(s.wait_p50_ns),
                    static_cast<unsigned long long>(s.wait_p90_ns),
                    static_cast<unsigned long long>(s.wait_p99_ns),
                    static_cast<unsigned long long>(s.wait_max_ns),
                    static_cast<unsigned long long>(s.hold_total_ns),
                    static_cast<unsigned long long>(s.hold_p50_ns),
                    static_cast<unsigned long long>(s.hold_p90_ns),
                    static_cast<unsigned long long>(s.hold_p99_ns),
                    static_cast<unsigned long long>(s.hold_max_ns));
      out += line;
    };
    for (const pyb_gil_stats &thread : threads) row(thread, thread.thread_name);
    row(total, "total");
    return out;
  }

 private:
  static std::string duration(uint64_t ns) {
    char text[32];
    if (ns < 10000) {
      std::snprintf(text, sizeof text, "%llu ns", static_cast<unsigned long long>(ns));
    } else if (ns < 10000000) {
      std::snprintf(text, sizeof text, "%.1f us", static_cast<double>(ns) / 1e3);
    } else if (ns < 10000000000ULL) {
      std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(ns) / 1e6);
    } else {
      std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ns) / 1e9);
    }
    return text;
  }
};

// Reads the GIL statistics now. Throws Error.
inline GilStats gil_stats() {
  GilStats out;
  out.total.struct_size = sizeof out.total;
  detail::check(pyb_gil_stats_total(&out.total));
  // Threads may start between the two calls: ask again until the count fits.
  for (size_t capacity = 16;; capacity *= 2) {
    pyb_gil_stats blank{};
    blank.struct_size = sizeof blank;
    out.threads.assign(capacity, blank);
    size_t count = 0;
    detail::check(pyb_gil_stats_threads(out.threads.data(), capacity, &count));
    if (count <= capacity) {
      out.threads.resize(count);
      return out;
    }
  }
}

}  // namespace pybridge

#endif  // PYBRIDGE_GIL_STATS_HPP
