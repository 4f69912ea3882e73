// pybridge/timeouts.hpp: std::chrono durations as the C API's millisecond timeouts.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_TIMEOUTS_HPP
#define PYBRIDGE_TIMEOUTS_HPP

#include <chrono>
#include <cstdint>

#include "pybridge.h"

namespace pybridge {

namespace detail {

template <class Rep, class Period>
uint32_t to_timeout_ms(std::chrono::duration<Rep, Period> timeout) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
  if (ms < 0) {
    return 0;
  }
  if (static_cast<unsigned long long>(ms) >= PYB_TIMEOUT_INFINITE) {
    return PYB_TIMEOUT_INFINITE - 1;  // finite stays finite
  }
  return static_cast<uint32_t>(ms);
}

}  // namespace detail

}  // namespace pybridge

#endif  // PYBRIDGE_TIMEOUTS_HPP
