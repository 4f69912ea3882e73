// pybridge/kinds.hpp: what a pyb_value holds (Kind) and the conversions of a borrowed one.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_KINDS_HPP
#define PYBRIDGE_KINDS_HPP

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include "pybridge.h"
#include "errors.hpp"

namespace pybridge {

// What a Value holds; the numbers are the C API's PYB_VALUE_* tags.
enum class Kind : uint32_t {
  none = PYB_VALUE_NONE,
  boolean = PYB_VALUE_BOOL,
  int64 = PYB_VALUE_INT,
  float64 = PYB_VALUE_FLOAT,
  str = PYB_VALUE_STR,
  bytes = PYB_VALUE_BYTES,
  object = PYB_VALUE_OBJECT,
};

namespace detail {

inline const char *kind_name(uint32_t tag) {
  switch (tag) {
    case PYB_VALUE_NONE: return "None";
    case PYB_VALUE_BOOL: return "bool";
    case PYB_VALUE_INT: return "int";
    case PYB_VALUE_FLOAT: return "float";
    case PYB_VALUE_STR: return "str";
    case PYB_VALUE_BYTES: return "bytes";
    case PYB_VALUE_OBJECT: return "object";
    default: return "unknown";
  }
}

[[noreturn]] inline void wrong_type(uint32_t tag, const char *wanted) {
  throw Error(PYB_E_WRONG_TYPE,
              std::string("expected ") + wanted + ", got a " + kind_name(tag) + " value");
}

// Conversions of a borrowed pyb_value (an argument, or a Value's view). OBJECT
// values go through the C API, which takes the GIL if needed.
inline int64_t as_int64(const pyb_value &v) {
  switch (v.tag) {
    case PYB_VALUE_INT: return v.data.int64;
    case PYB_VALUE_BOOL: return v.data.boolean ? 1 : 0;  // bool is an int subclass
    case PYB_VALUE_OBJECT: {
      int64_t out = 0;
      check(pyb_object_to_int64(v.data.object, &out));
      return out;
    }
    default: wrong_type(v.tag, "an int");
  }
}

inline double as_double(const pyb_value &v) {
  switch (v.tag) {
    case PYB_VALUE_FLOAT: return v.data.float64;
    case PYB_VALUE_INT: return static_cast<double>(v.data.int64);
    case PYB_VALUE_BOOL: return v.data.boolean ? 1.0 : 0.0;
    case PYB_VALUE_OBJECT: {
      double out = 0;
      check(pyb_object_to_double(v.data.object, &out));
      return out;
    }
    default: wrong_type(v.tag, "a float or int");
  }
}

// Python's truth value.
inline bool as_bool(const pyb_value &v) {
  switch (v.tag) {
    case PYB_VALUE_NONE: return false;
    case PYB_VALUE_BOOL: return v.data.boolean;
    case PYB_VALUE_INT: return v.data.int64 != 0;
    case PYB_VALUE_FLOAT: return v.data.float64 != 0.0;
    case PYB_VALUE_STR:
    case PYB_VALUE_BYTES: return v.data.str.len != 0;
    case PYB_VALUE_OBJECT: {
      bool out = false;
      check(pyb_object_to_bool(v.data.object, &out));
      return out;
    }
    default: wrong_type(v.tag, "a value with a truth value");
  }
}

// `value` as the integer type T, or Error PYB_E_OUT_OF_RANGE naming both
// when T cannot hold it: a Python int is never silently truncated.
template <class T>
T narrow_int(int64_t value) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>, "an integer type");
  bool fits = true;
  if constexpr (std::is_signed_v<T>) {
    if constexpr (sizeof(T) < sizeof(int64_t)) {
      fits = value >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
             value <= static_cast<int64_t>(std::numeric_limits<T>::max());
    }
  } else {
    fits = value >= 0;
    if constexpr (sizeof(T) < sizeof(int64_t)) {
      fits = fits && value <= static_cast<int64_t>(std::numeric_limits<T>::max());
    }
  }
  if (!fits) {
    throw Error(PYB_E_OUT_OF_RANGE,
                "the int " + std::to_string(value) + " does not fit in a " +
                    std::to_string(sizeof(T) * 8) + "-bit " +
                    (std::is_signed_v<T> ? "signed" : "unsigned") + " integer (" +
                    std::to_string(static_cast<long long>(std::numeric_limits<T>::min())) + ".." +
                    std::to_string(static_cast<unsigned long long>(std::numeric_limits<T>::max())) +
                    ")");
  }
  return static_cast<T>(value);
}

inline std::string_view view(const pyb_str &s) {
  return s.len == 0 ? std::string_view() : std::string_view(s.ptr, s.len);
}

}  // namespace detail

}  // namespace pybridge

#endif  // PYBRIDGE_KINDS_HPP
