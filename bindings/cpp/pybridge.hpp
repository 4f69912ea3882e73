// pybridge.hpp: header-only C++17 wrapper over pybridge's C ABI
// (bindings/c/pybridge.h). Users need neither Python.h nor any CPython header.
//
// Types, in wasmtime's .hh style:
//   Engine        the process's engine: initialize, shutdown from any thread,
//                 register C++ callables as Python functions.
//   Gil           scoped GIL acquisition; move-only; nests.
//   AllowThreads  scoped release of the GIL inside a GIL scope (or inside a
//                 host function), for long native work.
//   Object        move-only owning handle to a Python object; copy with clone();
//                 may be destroyed on any thread, with or without the GIL, even
//                 after the engine shut down.
//   Value         an owned value crossing the boundary: None, bool, int64, double,
//                 str, bytes or an Object.
//   Error         the exception every failing call throws: status, its name, the
//                 message and, for Python errors, type, message and traceback.
//   Args, Kwargs  a host function's positional and keyword arguments.
//   Task          a Python awaitable run on pybridge's event loop, as a future.
//   host_object / host_object_cast
//                 C++ objects handed to Python and back, type-checked.
//
// Threading: every call may be made on any thread and takes the GIL itself when
// the thread does not hold it. Error details are per thread: an Error is built
// on the thread whose call failed, right after it failed.
//
// Exceptions exist only on the C++ side: a host function that throws returns
// an error status to pybridge, and Python sees pybridge.HostError with the C++
// message. Nothing unwinds through Rust or CPython frames.

#ifndef PYBRIDGE_HPP
#define PYBRIDGE_HPP

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <initializer_list>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <unordered_set>
#include <utility>
#include <vector>

#include "pybridge.h"

namespace pybridge {

// ---------------------------------------------------------------- errors

namespace detail {

// Reads one of the thread-local last-error strings (`pyb_last_error_*`).
inline std::string read_last(size_t (*read)(char *, size_t)) {
  size_t length = read(nullptr, 0);
  if (length == 0) {
    return std::string();
  }
  std::string text(length + 1, '\0');
  size_t written = read(&text[0], text.size());
  text.resize(written < length ? written : length);
  return text;
}

}  // namespace detail

// A failed pybridge call. `status()` is never PYB_OK.
class Error : public std::exception {
 public:
  Error(pyb_status status, std::string message, std::string python_type = std::string(),
        std::string python_message = std::string(), std::string traceback = std::string())
      : status_(status),
        message_(std::move(message)),
        python_type_(std::move(python_type)),
        python_message_(std::move(python_message)),
        traceback_(std::move(traceback)) {
    what_ = std::string(status_name()) + ": " + message_;
  }

  // The error of the last failing pybridge call on this thread, which returned
  // `status`. Call it right after that call, on the same thread.
  static Error last(pyb_status status) {
    Error error(status, detail::read_last(pyb_last_error_message),
                detail::read_last(pyb_last_error_python_type),
                detail::read_last(pyb_last_error_python_message),
                detail::read_last(pyb_last_error_python_traceback));
    if (status == PYB_E_PYTHON) {
      std::string types = detail::read_last(pyb_last_error_python_types);
      for (size_t start = 0; start < types.size();) {
        size_t end = types.find('\n', start);
        if (end == std::string::npos) end = types.size();
        error.python_types_.push_back(types.substr(start, end - start));
        start = end + 1;
      }
      pyb_object exception = 0;
      if (pyb_last_error_python_exception(&exception) == PYB_OK && exception != 0) {
        // Shared by the copies of this Error; released (any thread) with the last one.
        error.exception_ = std::shared_ptr<const pyb_object>(
            new pyb_object(exception), [](const pyb_object *handle) {
              (void)pyb_object_release(*handle);
              delete handle;
            });
      }
    }
    return error;
  }

  pyb_status status() const noexcept { return status_; }
  // The status constant's name, e.g. "PYB_E_TIMEOUT".
  const char *status_name() const noexcept { return pyb_status_name(status_); }
  // pybridge's message: what happened and what to do.
  const std::string &message() const noexcept { return message_; }
  bool is_python() const noexcept { return status_ == PYB_E_PYTHON; }
  // For Python errors: the exception's qualified type name ("ZeroDivisionError"),
  // str(exception), and the traceback as Python prints it. Empty otherwise.
  const std::string &python_type() const noexcept { return python_type_; }
  const std::string &python_message() const noexcept { return python_message_; }
  const std::string &traceback() const noexcept { return traceback_; }
  // The exception's type and all its bases, most derived first, without
  // `object` ({"KeyError", "LookupError", "Exception", "BaseException"}).
  const std::vector<std::string> &python_types() const noexcept { return python_types_; }
  // True when the exception is a `type_name` or a subclass of it, as `except`
  // would match: "LookupError", "json.decoder.JSONDecodeError", or the bare
  // "JSONDecodeError".
  bool is(std::string_view type_name) const {
    for (const std::string &name : python_types_) {
      if (name == type_name) return true;
      if (type_name.find('.') == std::string_view::npos && name.size() > type_name.size() &&
          name.compare(name.size() - type_name.size(), type_name.size(), type_name) == 0 &&
          name[name.size() - type_name.size() - 1] == '.') {
        return true;
      }
    }
    return false;
  }
  // The Python exception object (a new owning Object), or an empty Object
  // when there is none. Defined after Object.
  class Object exception() const;
  // "<status name>: <message>".
  const char *what() const noexcept override { return what_.c_str(); }

 private:
  pyb_status status_;
  std::string message_;
  std::string python_type_;
  std::string python_message_;
  std::string traceback_;
  std::string what_;
  std::vector<std::string> python_types_;
  std::shared_ptr<const pyb_object> exception_;
};

namespace detail {

inline void check(pyb_status status) {
  if (status != PYB_OK) {
    throw Error::last(status);
  }
}

}  // namespace detail

// ---------------------------------------------------------------- objects

class Value;
class ValueRef;

namespace detail {

// The UTF-8 text of a str object behind a borrowed handle.
inline std::string string_of(pyb_object handle) {
  for (;;) {
    size_t length = 0;
    check(pyb_object_to_string(handle, nullptr, 0, &length));
    std::string text(length + 1, '\0');
    pyb_status status = pyb_object_to_string(handle, &text[0], text.size(), &length);
    if (status == PYB_E_OUT_OF_RANGE && length + 1 > text.size()) {
      continue;  // a str subclass changed in between: ask again
    }
    check(status);
    text.resize(length);
    return text;
  }
}

// The contents of a bytes or bytearray object behind a borrowed handle.
inline std::vector<std::byte> bytes_of(pyb_object handle) {
  for (;;) {
    size_t length = 0;
    check(pyb_object_to_bytes(handle, nullptr, 0, &length));
    std::vector<std::byte> bytes(length);
    pyb_status status =
        pyb_object_to_bytes(handle, reinterpret_cast<uint8_t *>(bytes.data()), bytes.size(), &length);
    if (status == PYB_E_OUT_OF_RANGE && length > bytes.size()) {
      continue;  // a bytearray grew in between: ask again
    }
    check(status);
    bytes.resize(length);
    return bytes;
  }
}

}  // namespace detail

// A move-only owning handle to a Python object; the empty handle is 0.
// Destroying it releases the handle: safe on any thread, with or without the
// GIL, never blocks, and harmless after the engine shut down.
class Object {
 public:
  Object() noexcept = default;
  // Takes ownership of a handle a C function returned.
  explicit Object(pyb_object owned) noexcept : handle_(owned) {}
  Object(const Object &) = delete;
  Object &operator=(const Object &) = delete;
  Object(Object &&other) noexcept : handle_(other.into_raw()) {}
  Object &operator=(Object &&other) noexcept {
    if (this != &other) {
      reset();
      handle_ = other.into_raw();
    }
    return *this;
  }
  ~Object() { reset(); }

  // The raw handle, still owned by this object.
  pyb_object capi() const noexcept { return handle_; }
  // Gives up ownership: the caller must release the returned handle.
  pyb_object into_raw() noexcept {
    pyb_object handle = handle_;
    handle_ = 0;
    return handle;
  }
  // Releases the handle now. A handle from a shut-down engine is already dead:
  // its PYB_E_BAD_HANDLE is expected and ignored.
  void reset() noexcept {
    if (handle_ != 0) {
      (void)pyb_object_release(handle_);
      handle_ = 0;
    }
  }
  explicit operator bool() const noexcept { return handle_ != 0; }

  // A second owning handle to the same Python object.
  Object clone() const {
    pyb_object copy = 0;
    detail::check(pyb_object_clone(handle_, &copy));
    return Object(copy);
  }

  int64_t to_int64() const {
    int64_t out = 0;
    detail::check(pyb_object_to_int64(handle_, &out));
    return out;
  }
  double to_double() const {
    double out = 0;
    detail::check(pyb_object_to_double(handle_, &out));
    return out;
  }
  // Python's bool(x).
  bool to_bool() const {
    bool out = false;
    detail::check(pyb_object_to_bool(handle_, &out));
    return out;
  }
  std::string to_string() const { return detail::string_of(handle_); }
  std::vector<std::byte> to_bytes() const { return detail::bytes_of(handle_); }

  size_t len() const {
    size_t out = 0;
    detail::check(pyb_len(handle_, &out));
    return out;
  }

  // Defined after Value.
  Value attr(const char *name) const;
  void set_attr(const char *name, const Value &value) const;
  Value item(const ValueRef &key) const;
  void set_item(const ValueRef &key, const ValueRef &value) const;
  template <class... A>
  Value call(A &&...args) const;
  template <class... A>
  Value call_method(const char *name, A &&...args) const;
  // iter(object); step it with next().
  Object iter() const {
    pyb_object out = 0;
    detail::check(pyb_iter(handle_, &out));
    return Object(out);
  }
  // The iterator's next item, or nullopt when it is exhausted.
  std::optional<Value> next() const;

 private:
  pyb_object handle_ = 0;
};

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

inline std::string_view view(const pyb_str &s) {
  return s.len == 0 ? std::string_view() : std::string_view(s.ptr, s.len);
}

}  // namespace detail

// An owned value: None, bool, int64, double, str (UTF-8), bytes or an Object.
// Move-only (an Object inside cannot be copied without the GIL): use clone().
class Value {
 public:
  Value() noexcept = default;
  Value(std::nullptr_t) noexcept {}
  Value(bool b) noexcept : kind_(Kind::boolean) { scalar_.boolean = b; }
  template <class T, std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, bool>, int> = 0>
  Value(T i) : kind_(Kind::int64) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(int64_t)) {
      if (i > static_cast<T>(std::numeric_limits<int64_t>::max())) {
        throw Error(PYB_E_OUT_OF_RANGE, "unsigned value does not fit in int64");
      }
    }
    scalar_.int64 = static_cast<int64_t>(i);
  }
  Value(double d) noexcept : kind_(Kind::float64) { scalar_.float64 = d; }
  Value(std::string s) noexcept : kind_(Kind::str), text_(std::move(s)) {}
  Value(std::string_view s) : kind_(Kind::str), text_(s) {}
  Value(const char *s) : kind_(Kind::str), text_(s) {}
  Value(const std::vector<std::byte> &b)
      : kind_(Kind::bytes), text_(reinterpret_cast<const char *>(b.data()), b.size()) {}
  Value(Object o) noexcept : kind_(o ? Kind::object : Kind::none), object_(std::move(o)) {}

  // A bytes value from raw bytes.
  static Value bytes(std::string_view raw) {
    Value v{std::string(raw)};
    v.kind_ = Kind::bytes;
    return v;
  }

  // Takes over a value a C function wrote to an output: copies STR/BYTES out of
  // pybridge's per-thread buffer and takes ownership of an OBJECT handle.
  static Value adopt(const pyb_value &out) {
    Value v;
    switch (out.tag) {
      case PYB_VALUE_NONE: break;
      case PYB_VALUE_BOOL: v = Value(out.data.boolean); break;
      case PYB_VALUE_INT: v = Value(out.data.int64); break;
      case PYB_VALUE_FLOAT: v = Value(out.data.float64); break;
      case PYB_VALUE_STR: v = Value(std::string(detail::view(out.data.str))); break;
      case PYB_VALUE_BYTES: v = bytes(detail::view(out.data.str)); break;
      case PYB_VALUE_OBJECT: v = Value(Object(out.data.object)); break;
      default: throw Error(PYB_E_INVALID_ARGUMENT, "pybridge returned an unknown value tag");
    }
    return v;
  }

  Value(Value &&) noexcept = default;
  Value &operator=(Value &&) noexcept = default;
  Value(const Value &) = delete;
  Value &operator=(const Value &) = delete;

  // A copy; an Object inside is cloned (takes the GIL if needed).
  Value clone() const {
    Value v;
    v.kind_ = kind_;
    v.scalar_ = scalar_;
    v.text_ = text_;
    if (object_) {
      v.object_ = object_.clone();
    }
    return v;
  }

  Kind kind() const noexcept { return kind_; }
  bool is_none() const noexcept { return kind_ == Kind::none; }

  // A borrowed C view: STR/BYTES point into this Value and an OBJECT handle
  // stays owned by it; valid while the Value lives unchanged.
  pyb_value capi() const noexcept {
    pyb_value v{};
    v.tag = static_cast<uint32_t>(kind_);
    switch (kind_) {
      case Kind::none: break;
      case Kind::boolean: v.data.boolean = scalar_.boolean; break;
      case Kind::int64: v.data.int64 = scalar_.int64; break;
      case Kind::float64: v.data.float64 = scalar_.float64; break;
      case Kind::str:
      case Kind::bytes: v.data.str = pyb_str{text_.data(), text_.size()}; break;
      case Kind::object: v.data.object = object_.capi(); break;
    }
    return v;
  }

  int64_t to_int64() const { return detail::as_int64(capi()); }
  double to_double() const { return detail::as_double(capi()); }
  bool to_bool() const { return detail::as_bool(capi()); }
  // The text of a str (or of a str object).
  std::string to_string() const {
    if (kind_ == Kind::str) {
      return text_;
    }
    if (kind_ == Kind::object) {
      return object_.to_string();
    }
    detail::wrong_type(capi().tag, "a str");
  }
  // A view of a plain str value's text, valid while this Value lives.
  std::string_view string_view() const {
    if (kind_ != Kind::str) {
      detail::wrong_type(capi().tag, "a str");
    }
    return text_;
  }
  std::vector<std::byte> to_bytes() const {
    if (kind_ == Kind::bytes) {
      const std::byte *begin = reinterpret_cast<const std::byte *>(text_.data());
      return std::vector<std::byte>(begin, begin + text_.size());
    }
    if (kind_ == Kind::object) {
      return object_.to_bytes();
    }
    detail::wrong_type(capi().tag, "bytes");
  }
  // The value as a Python object: the Object itself for an OBJECT value (this
  // Value becomes None), a new object otherwise.
  Object into_object() {
    if (kind_ == Kind::object) {
      kind_ = Kind::none;
      return std::move(object_);
    }
    pyb_value raw = capi();
    pyb_object out = 0;
    detail::check(pyb_object_from_value(&raw, &out));
    return Object(out);
  }
  // The Object inside an OBJECT value (nullptr otherwise).
  const Object *object() const noexcept { return kind_ == Kind::object ? &object_ : nullptr; }

  // value.as<T>() for T in int64_t (and other integers), double, bool,
  // std::string, std::vector<std::byte>.
  template <class T>
  T as() const {
    if constexpr (std::is_same_v<T, bool>) {
      return to_bool();
    } else if constexpr (std::is_integral_v<T>) {
      return static_cast<T>(to_int64());
    } else if constexpr (std::is_floating_point_v<T>) {
      return static_cast<T>(to_double());
    } else if constexpr (std::is_same_v<T, std::string>) {
      return to_string();
    } else {
      static_assert(std::is_same_v<T, std::vector<std::byte>>, "unsupported conversion");
      return to_bytes();
    }
  }

 private:
  Kind kind_ = Kind::none;
  union Scalar {
    bool boolean;
    int64_t int64;
    double float64;
  } scalar_{};
  std::string text_;
  Object object_;
};

// An argument for a call: borrows a Value or Object, or holds a converted one.
// Built in place for the duration of one call; not copyable or movable.
class ValueRef {
 public:
  ValueRef(const Value &v) noexcept : borrowed_(&v) {}
  ValueRef(const Object &o) noexcept : object_(o.capi()), is_object_(true) {}
  template <class T,
            std::enable_if_t<!std::is_same_v<std::decay_t<T>, Value> &&
                                 !std::is_same_v<std::decay_t<T>, Object> &&
                                 std::is_constructible_v<Value, T &&>,
                             int> = 0>
  ValueRef(T &&v) : owned_(std::forward<T>(v)) {}
  ValueRef(const ValueRef &) = delete;
  ValueRef &operator=(const ValueRef &) = delete;

  pyb_value capi() const noexcept {
    if (borrowed_ != nullptr) {
      return borrowed_->capi();
    }
    if (is_object_) {
      pyb_value v{};
      v.tag = PYB_VALUE_OBJECT;
      v.data.object = object_;
      return v;
    }
    return owned_.capi();
  }

 private:
  const Value *borrowed_ = nullptr;
  pyb_object object_ = 0;
  bool is_object_ = false;
  Value owned_;
};

inline Object Error::exception() const {
  if (!exception_) return Object();
  pyb_object copy = 0;
  detail::check(pyb_object_clone(*exception_, &copy));
  return Object(copy);
}

inline Value Object::attr(const char *name) const {
  pyb_value out{};
  detail::check(pyb_getattr(handle_, name, &out));
  return Value::adopt(out);
}

inline void Object::set_attr(const char *name, const Value &value) const {
  pyb_value raw = value.capi();
  detail::check(pyb_setattr(handle_, name, &raw));
}

inline Value Object::item(const ValueRef &key) const {
  pyb_value raw = key.capi();
  pyb_value out{};
  detail::check(pyb_getitem(handle_, &raw, &out));
  return Value::adopt(out);
}

inline void Object::set_item(const ValueRef &key, const ValueRef &value) const {
  pyb_value raw_key = key.capi();
  pyb_value raw_value = value.capi();
  detail::check(pyb_setitem(handle_, &raw_key, &raw_value));
}

// A keyword argument for call() and call_method(): obj.call(1, kw("indent", 2)).
// It refers to its value until the end of the full expression it appears in.
// Keywords come after every positional argument (a compile-time check), as in
// Python.
template <class T>
struct Keyword {
  const char *name;
  T &&value;
};

template <class T>
Keyword<T> kw(const char *name, T &&value) noexcept {
  return Keyword<T>{name, std::forward<T>(value)};
}

namespace detail {

template <class T>
struct is_keyword : std::false_type {};
template <class T>
struct is_keyword<Keyword<T>> : std::true_type {};

// True when no positional argument follows a keyword. (A loop over an array:
// a fold over an empty pack would leave a variable only ever written, which
// GCC 16 reports with -Wunused-but-set-variable.)
template <class... A>
constexpr bool keywords_last() {
  // The leading false keeps the array non-empty for an empty pack.
  constexpr bool keyword[] = {false, is_keyword<std::decay_t<A>>::value...};
  for (size_t i = 1; i < sizeof keyword / sizeof keyword[0]; ++i) {
    if (keyword[i - 1] && !keyword[i]) {
      return false;
    }
  }
  return true;
}

// Values converted for one C call: each argument is borrowed (a Value or an
// Object) or converted into a holder, and stays valid while the pack lives.
// Keyword names are collected in order.
template <size_t N>
class ValuePack {
 public:
  template <class... A>
  explicit ValuePack(A &&...args) {
    (add(std::forward<A>(args)), ...);
  }
  ValuePack(const ValuePack &) = delete;
  ValuePack &operator=(const ValuePack &) = delete;

  const pyb_value *data() const noexcept { return raw_.data(); }
  size_t positional() const noexcept { return N - keywords_; }
  size_t keywords() const noexcept { return keywords_; }
  const char *const *names() const noexcept { return keywords_ ? names_.data() : nullptr; }

 private:
  template <class T>
  void add(T &&arg) {
    using D = std::decay_t<T>;
    if constexpr (is_keyword<D>::value) {
      names_[keywords_++] = arg.name;
      add(std::forward<decltype(arg.value)>(arg.value));
      return;
    } else if constexpr (std::is_same_v<D, Value>) {
      raw_[next_] = arg.capi();
    } else if constexpr (std::is_same_v<D, Object>) {
      raw_[next_].tag = PYB_VALUE_OBJECT;
      raw_[next_].data.object = arg.capi();
    } else {
      holders_[next_].emplace(std::forward<T>(arg));
      raw_[next_] = holders_[next_]->capi();
    }
    ++next_;
  }

  std::array<std::optional<Value>, N> holders_{};
  std::array<pyb_value, N> raw_{};
  std::array<const char *, N> names_{};
  size_t next_ = 0;
  size_t keywords_ = 0;
};

// Runs `call(pack, &out)` and adopts its output.
template <class Call, class... A>
Value with_args(Call &&call, A &&...args) {
  static_assert(keywords_last<A...>(), "keyword arguments (kw) must come after positional ones");
  ValuePack<sizeof...(A)> pack(std::forward<A>(args)...);
  pyb_value out{};
  check(call(pack, &out));
  return Value::adopt(out);
}

}  // namespace detail

template <class... A>
Value Object::call(A &&...args) const {
  return detail::with_args(
      [this](const auto &pack, pyb_value *out) {
        return pyb_call(handle_, pack.data(), pack.positional(), pack.names(), pack.keywords(), out);
      },
      std::forward<A>(args)...);
}

template <class... A>
Value Object::call_method(const char *name, A &&...args) const {
  return detail::with_args(
      [this, name](const auto &pack, pyb_value *out) {
        return pyb_call_method(handle_, name, pack.data(), pack.positional(), pack.names(),
                               pack.keywords(), out);
      },
      std::forward<A>(args)...);
}

// ---------------------------------------------------------------- containers

namespace detail {

// `make(items, count, &out)` (pyb_tuple_new or pyb_list_new) over the arguments.
template <class Make, class... A>
Object sequence_of(Make make, A &&...items) {
  ValuePack<sizeof...(A)> pack(std::forward<A>(items)...);
  pyb_object out = 0;
  check(make(pack.data(), sizeof...(A), &out));
  return Object(out);
}

}  // namespace detail

// A new tuple of the arguments: make_tuple(1, "two", 3.0). Any thread.
template <class... A>
Object make_tuple(A &&...items) {
  return detail::sequence_of(pyb_tuple_new, std::forward<A>(items)...);
}

// A new list of the arguments. Any thread.
template <class... A>
Object make_list(A &&...items) {
  return detail::sequence_of(pyb_list_new, std::forward<A>(items)...);
}

// A new dict with str keys: make_dict(kw("a", 1), kw("b", "two")). Any thread.
template <class... T>
Object make_dict(Keyword<T>... entries) {
  std::array<Value, sizeof...(T)> keys{Value(entries.name)...};
  detail::ValuePack<sizeof...(T)> values(std::forward<T>(entries.value)...);
  std::array<pyb_value, sizeof...(T)> raw_keys{};
  for (size_t i = 0; i < keys.size(); ++i) raw_keys[i] = keys[i].capi();
  pyb_object out = 0;
  detail::check(pyb_dict_new(raw_keys.data(), values.data(), sizeof...(T), &out));
  return Object(out);
}

// A new list from a C++ range of values convertible to Value (vector<int64_t>,
// vector<std::string>, ...). Any thread.
template <class Range>
Object list_from(const Range &range) {
  std::vector<Value> items;
  for (const auto &item : range) items.emplace_back(item);
  std::vector<pyb_value> raw;
  raw.reserve(items.size());
  for (const Value &item : items) raw.push_back(item.capi());
  pyb_object out = 0;
  detail::check(pyb_list_new(raw.data(), raw.size(), &out));
  return Object(out);
}

// A new dict from a C++ map (or any range of pairs) whose keys and values
// convert to Value. Any thread.
template <class Map>
Object dict_from(const Map &map) {
  std::vector<Value> keys;
  std::vector<Value> values;
  for (const auto &[key, value] : map) {
    keys.emplace_back(key);
    values.emplace_back(value);
  }
  std::vector<pyb_value> raw_keys;
  std::vector<pyb_value> raw_values;
  for (size_t i = 0; i < keys.size(); ++i) {
    raw_keys.push_back(keys[i].capi());
    raw_values.push_back(values[i].capi());
  }
  pyb_object out = 0;
  detail::check(pyb_dict_new(raw_keys.data(), raw_values.data(), keys.size(), &out));
  return Object(out);
}

// The items of any iterable as a std::vector<T> (T as for Value::as). Any thread.
template <class T>
std::vector<T> to_vector(const Object &iterable) {
  std::vector<T> out;
  Object iterator = iterable.iter();
  while (std::optional<Value> item = iterator.next()) out.push_back(item->as<T>());
  return out;
}

inline std::optional<Value> Object::next() const {
  pyb_value out{};
  bool done = false;
  detail::check(pyb_iter_next(handle_, &out, &done));
  if (done) {
    return std::nullopt;
  }
  return Value::adopt(out);
}

// ---------------------------------------------------------------- running code

// Runs statements in `scope` (an empty Object means __main__). `filename`
// shows in tracebacks. Any thread; takes the GIL if needed.
inline void run(const std::string &code, const Object &scope = Object(),
                const char *filename = nullptr) {
  detail::check(pyb_run(code.c_str(), filename, scope.capi()));
}

// Evaluates one expression in `scope` (empty: __main__).
inline Value eval(const std::string &expression, const Object &scope = Object(),
                  const char *filename = nullptr) {
  pyb_value out{};
  detail::check(pyb_eval(expression.c_str(), filename, scope.capi(), &out));
  return Value::adopt(out);
}

// A fresh globals dict for run/eval: scripts in different scopes do not see
// each other's globals.
inline Object new_scope() {
  pyb_object out = 0;
  detail::check(pyb_scope_new(&out));
  return Object(out);
}

inline Object import_module(const char *name) {
  pyb_object out = 0;
  detail::check(pyb_import(name, &out));
  return Object(out);
}

// ---------------------------------------------------------------- GIL

// Takes the GIL for this thread for its lifetime (pyb_gil_acquire). Scopes
// nest; destroy them on the thread that made them, innermost first. Move-only
// (moving keeps it on the same thread). Throws Error with PYB_E_NOT_INITIALIZED
// or PYB_E_SHUTTING_DOWN when the engine is not accepting GIL requests.
class Gil {
 public:
  Gil() { detail::check(pyb_gil_acquire(&token_)); }
  Gil(const Gil &) = delete;
  Gil &operator=(const Gil &) = delete;
  Gil(Gil &&other) noexcept : token_(other.token_), active_(other.active_) {
    other.active_ = false;
  }
  Gil &operator=(Gil &&other) noexcept {
    if (this != &other) {
      close();
      token_ = other.token_;
      active_ = other.active_;
      other.active_ = false;
    }
    return *this;
  }
  ~Gil() { close(); }

  // Ends the scope now, reporting a misuse (wrong thread, out of order) as an Error.
  void release() {
    if (active_) {
      active_ = false;
      detail::check(pyb_gil_release(token_));
    }
  }
  // True when the calling thread holds the GIL (through pybridge or otherwise).
  static bool held() noexcept { return pyb_gil_held() != 0; }
  pyb_gil capi() const noexcept { return token_; }

 private:
  void close() noexcept {
    if (active_) {
      active_ = false;
      (void)pyb_gil_release(token_);
    }
  }
  pyb_gil token_ = 0;
  bool active_ = true;
};

// Releases the GIL this thread holds (all nesting levels) for its lifetime, and
// takes it back when destroyed (blocking until it is free): wrap long native
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

// ---------------------------------------------------------------- host functions

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

// A STR/BYTES result must outlive the host function (pybridge copies it after
// the return): it is kept here until the next host function on this thread
// returns one. A nested host call finishes before its caller writes its result.
inline Value &result_slot() {
  thread_local Value slot;
  return slot;
}

inline pyb_status fail_host(pyb_status status, const char *message) noexcept {
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

  static pyb_status call(const pyb_value *args, size_t nargs, pyb_value *result,
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

// ---------------------------------------------------------------- host objects

namespace detail {

// What a C++ host object holds: the value and its exact type. Python holds
// the box (pyb_host_object_new); its free function deletes it.
struct HostBoxBase {
  explicit HostBoxBase(const std::type_info &type) noexcept : type(type) {}
  virtual ~HostBoxBase() = default;
  const std::type_info &type;
};

template <class T>
struct HostBox final : HostBoxBase {
  explicit HostBox(std::shared_ptr<T> value) noexcept
      : HostBoxBase(typeid(T)), value(std::move(value)) {}
  std::shared_ptr<T> value;
};

// The boxes this wrapper made and Python still holds, so a pointer another
// binding (C, C#) stored in a host object is recognised without reading it.
// Never destroyed: a box's free can run at the engine's end, after static
// destructors.
struct HostBoxes {
  std::mutex lock;
  std::unordered_set<const void *> live;
};

inline HostBoxes &host_boxes() {
  static HostBoxes *boxes = new HostBoxes();
  return *boxes;
}

inline void free_host_box(void *box) noexcept {
  {
    HostBoxes &boxes = host_boxes();
    std::lock_guard<std::mutex> guard(boxes.lock);
    boxes.live.erase(box);
  }
  delete static_cast<HostBoxBase *>(box);
}

template <class T>
std::shared_ptr<T> host_object_value(pyb_object handle) {
  void *pointer = nullptr;
  check(pyb_host_object_get(handle, &pointer));
  HostBoxes &boxes = host_boxes();
  std::lock_guard<std::mutex> guard(boxes.lock);
  if (boxes.live.count(pointer) == 0) {
    throw Error(PYB_E_WRONG_TYPE,
                "the host object was not made by pybridge::host_object (C++): it holds a "
                "pointer another binding stored");
  }
  auto *box = static_cast<HostBoxBase *>(pointer);
  if (box->type != typeid(T)) {
    throw Error(PYB_E_WRONG_TYPE, std::string("the host object holds a ") + box->type.name() +
                                      ", not a " + typeid(T).name());
  }
  return static_cast<HostBox<T> *>(box)->value;
}

}  // namespace detail

// Hands a C++ object to Python as an opaque host object (pyb_host_object_new)
// that Python can store, compare and pass back to host functions, where
// host_object_cast<T> gets it back. Python shares ownership: the object is
// destroyed when Python has let go of it and the host holds no shared_ptr to
// it, on the thread that let go, with the GIL held (at the latest at the
// interpreter's end; never for one a daemon Python thread still reaches at
// shutdown, as pyb_host_object_new says), so its destructor must not wait
// for another thread that needs the GIL. Any thread. Throws Error.
template <class T>
Object host_object(std::shared_ptr<T> value) {
  static_assert(!std::is_const_v<T>, "host objects are shared as non-const");
  if (!value) {
    throw Error(PYB_E_NULL_ARGUMENT, "host_object: the shared_ptr is empty");
  }
  auto *box = new detail::HostBox<T>(std::move(value));
  {
    detail::HostBoxes &boxes = detail::host_boxes();
    std::lock_guard<std::mutex> guard(boxes.lock);
    boxes.live.insert(static_cast<detail::HostBoxBase *>(box));
  }
  pyb_object out = 0;
  pyb_status status = pyb_host_object_new(static_cast<detail::HostBoxBase *>(box),
                                          &detail::free_host_box, &out);
  if (status != PYB_OK) {
    Error error = Error::last(status);
    detail::free_host_box(static_cast<detail::HostBoxBase *>(box));  // on error it stays ours
    throw error;
  }
  return Object(out);
}

// host_object(std::make_shared<T>(args...)).
template <class T, class... A>
Object make_host_object(A &&...args) {
  return host_object(std::make_shared<T>(std::forward<A>(args)...));
}

// The C++ object inside a host object made by host_object<T>, shared (it
// stays alive while the result does, whatever Python does). Exactly T, not a
// base or derived class. Throws Error: PYB_E_WRONG_TYPE (not a host object,
// one another binding made, or one holding another type; the message names
// both types), PYB_E_BAD_HANDLE, PYB_E_WRONG_INTERPRETER. Any thread.
template <class T>
std::shared_ptr<T> host_object_cast(const Object &object) {
  return detail::host_object_value<T>(object.capi());
}

// The same, for a host function's argument.
template <class T>
std::shared_ptr<T> host_object_cast(const Arg &arg) {
  if (arg.kind() != Kind::object) {
    throw Error(PYB_E_WRONG_TYPE, std::string("expected a host object, got ") +
                                      detail::kind_name(arg.capi().tag));
  }
  return detail::host_object_value<T>(arg.capi().data.object);
}

// ---------------------------------------------------------------- engine

// How pyb_engine_initialize sets Python up. Empty strings mean "default".
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
  pyb_status try_shutdown(std::chrono::duration<Rep, Period> timeout,
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

// A sub-interpreter (pyb_interpreter_new): its own GIL by default (CPython
// 3.12+), or the main one's with shared_gil. Move-only; the destructor
// destroys it (waiting at most 10 s, never throwing). Object handles made
// inside belong to it: use them only inside it (PYB_E_WRONG_INTERPRETER).
class Interpreter {
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
  Interpreter(const Interpreter &) = delete;
  Interpreter &operator=(const Interpreter &) = delete;
  Interpreter(Interpreter &&other) noexcept : handle_(other.handle_) { other.handle_ = 0; }
  Interpreter &operator=(Interpreter &&other) noexcept {
    if (this != &other) {
      (void)destroy_quietly();
      handle_ = other.handle_;
      other.handle_ = 0;
    }
    return *this;
  }
  ~Interpreter() { (void)destroy_quietly(); }

  // A GIL scope inside this interpreter (pyb_interpreter_enter): pybridge calls
  // on this thread work there until the scope ends. Release like a Gil.
  class Scope {
   public:
    explicit Scope(const Interpreter &interpreter) : Scope(interpreter.capi()) {}
    explicit Scope(pyb_interpreter handle) {
      detail::check(pyb_interpreter_enter(handle, &token_));
    }
    Scope(const Scope &) = delete;
    Scope &operator=(const Scope &) = delete;
    Scope(Scope &&other) noexcept : token_(other.token_), active_(other.active_) {
      other.active_ = false;
    }
    ~Scope() {
      if (active_) {
        (void)pyb_gil_release(token_);
      }
    }
    void release() {
      if (active_) {
        active_ = false;
        detail::check(pyb_gil_release(token_));
      }
    }

   private:
    pyb_gil token_ = 0;
    bool active_ = true;
  };

  Scope enter() const { return Scope(*this); }

  // Destroys it now, waiting at most `timeout` for threads inside. Throws
  // Error: PYB_E_TIMEOUT (unchanged), PYB_E_SHUTDOWN_COMMITTED (its end began
  // and carries on; destroy again to wait for it), PYB_E_WOULD_DEADLOCK
  // (called from inside).
  template <class Rep, class Period>
  void destroy(std::chrono::duration<Rep, Period> timeout) {
    detail::check(pyb_interpreter_destroy(handle_, detail::to_timeout_ms(timeout)));
    handle_ = 0;
  }

  pyb_interpreter capi() const noexcept { return handle_; }

 private:
  explicit Interpreter(pyb_interpreter handle) noexcept : handle_(handle) {}
  pyb_status destroy_quietly() noexcept {
    pyb_status status = PYB_OK;
    if (handle_ != 0) {
      status = pyb_interpreter_destroy(handle_, 10000);
      handle_ = 0;
    }
    return status;
  }
  pyb_interpreter handle_ = 0;
};

// A pool of own-GIL interpreters, each set up by the same code (pyb_pool_new).
// Borrow one with lease(): the Lease gives it back when it ends.
class Pool {
 public:
  Pool(size_t count, const std::string &setup_code) {
    detail::check(pyb_pool_new(count, setup_code.empty() ? nullptr : setup_code.c_str(), &handle_));
  }
  Pool(const Pool &) = delete;
  Pool &operator=(const Pool &) = delete;
  Pool(Pool &&other) noexcept : handle_(other.handle_) { other.handle_ = 0; }
  ~Pool() {
    if (handle_ != 0) {
      (void)pyb_pool_destroy(handle_, 10000);
    }
  }

  // A borrowed interpreter, entered on this thread for the lease's life.
  class Lease {
   public:
    Lease(const Lease &) = delete;
    Lease &operator=(const Lease &) = delete;
    Lease(Lease &&other) noexcept
        : pool_(other.pool_), interpreter_(other.interpreter_), scope_(std::move(other.scope_)) {
      other.interpreter_ = 0;
    }
    ~Lease() {
      scope_.reset();
      if (interpreter_ != 0) {
        (void)pyb_pool_return(pool_, interpreter_);
      }
    }
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
    pyb_pool pool_;
    pyb_interpreter interpreter_;
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

  // Destroys it now: waits at most `timeout` for leases to end. Throws Error
  // (PYB_E_SHUTDOWN_COMMITTED: the interpreters' end began and carries on;
  // destroy again to wait for it).
  template <class Rep, class Period>
  void destroy(std::chrono::duration<Rep, Period> timeout) {
    detail::check(pyb_pool_destroy(handle_, detail::to_timeout_ms(timeout)));
    handle_ = 0;
  }

  pyb_pool capi() const noexcept { return handle_; }

 private:
  pyb_pool handle_ = 0;
};

// Process-wide counters (pyb_stats_get). Any thread.
inline pyb_stats stats() {
  pyb_stats out{};
  out.struct_size = sizeof out;
  detail::check(pyb_stats_get(&out));
  return out;
}

// ---------------------------------------------------------------- coroutines

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

// ---------------------------------------------------------------- buffers

// A zero-copy view of an object's memory (pyb_buffer_get): bytes, bytearray,
// array.array, memoryview, NumPy arrays. The view holds an export of its own
// that no Python code can end, so the memory stays put until the view is
// destroyed (any thread, no GIL needed). Reading and writing it needs no GIL
// either; do not race Python code that uses it. Move-only.
class BufferView {
 public:
  // Throws Error: PYB_E_WRONG_TYPE for an object without the buffer protocol,
  // or read-only memory when `writable`.
  explicit BufferView(const Object &object, bool writable = false) {
    view_.struct_size = sizeof view_;
    detail::check(pyb_buffer_get(object.capi(), writable ? PYB_BUFFER_WRITABLE : 0, &view_));
  }
  BufferView(BufferView &&other) noexcept : view_(other.view_) {
    other.view_.owner = 0;
    other.view_.data = nullptr;
  }
  BufferView &operator=(BufferView &&other) noexcept {
    if (this != &other) {
      release();
      view_ = other.view_;
      other.view_.owner = 0;
      other.view_.data = nullptr;
    }
    return *this;
  }
  BufferView(const BufferView &) = delete;
  BufferView &operator=(const BufferView &) = delete;
  ~BufferView() { release(); }

  // The first item in logical order (pyb_buffer.data): item [i, j, ...] starts
  // strides()[0] * i + strides()[1] * j + ... bytes from it. With a negative
  // stride (a reversed view, Python's m[::-1]) it is not the lowest address;
  // every item lies in [lowest(), lowest() + span()).
  void *data() const noexcept { return view_.data; }
  // The lowest address of any item's bytes: data() unless a stride is negative.
  void *lowest() const noexcept { return view_.lowest; }
  // Bytes from lowest() to the end of the highest item: size_bytes() for
  // contiguous memory, more when strides skip bytes, 0 for an empty view.
  size_t span() const noexcept { return view_.span; }
  // data() as items of T; checks that T has the view's item size.
  template <class T>
  T *data_as() const {
    if (sizeof(T) != view_.itemsize) {
      throw Error(PYB_E_WRONG_TYPE, "the buffer's items (format '" + std::string(view_.format) + "') are " +
                                        std::to_string(view_.itemsize) + " bytes, not " +
                                        std::to_string(sizeof(T)));
    }
    return static_cast<T *>(view_.data);
  }
  size_t size_bytes() const noexcept { return view_.len; }
  size_t itemsize() const noexcept { return view_.itemsize; }
  size_t count() const noexcept { return view_.itemsize == 0 ? 0 : view_.len / view_.itemsize; }
  bool readonly() const noexcept { return view_.readonly; }
  std::string_view format() const noexcept { return view_.format; }
  int ndim() const noexcept { return view_.ndim; }
  std::vector<ptrdiff_t> shape() const { return {view_.shape, view_.shape + view_.ndim}; }
  std::vector<ptrdiff_t> strides() const { return {view_.strides, view_.strides + view_.ndim}; }
  const pyb_buffer &capi() const noexcept { return view_; }

 private:
  void release() noexcept { (void)pyb_buffer_release(&view_); }

  pyb_buffer view_{};
};

namespace detail {

// The struct-module format of a C++ arithmetic type: bool, every signed and
// unsigned integer of 1, 2, 4 or 8 bytes (char and wchar_t among them), float
// and double. Python's struct has no item for wider ones.
template <class T>
constexpr const char *format_of() {
  static_assert(std::is_arithmetic_v<T>, "share_memory needs an arithmetic item type");
  static_assert(!std::is_floating_point_v<T> || sizeof(T) == 4 || sizeof(T) == 8,
                "share_memory: Python has no item format for long double");
  static_assert(!std::is_integral_v<T> || sizeof(T) <= 8,
                "share_memory: Python has no item format for integers wider than 64 bits");
  if constexpr (std::is_same_v<T, bool>) return "?";
  else if constexpr (std::is_floating_point_v<T>) return sizeof(T) == 4 ? "f" : "d";
  else if constexpr (std::is_signed_v<T>) return sizeof(T) == 1 ? "b" : sizeof(T) == 2 ? "h" : sizeof(T) == 4 ? "i" : "q";
  else return sizeof(T) == 1 ? "B" : sizeof(T) == 2 ? "H" : sizeof(T) == 4 ? "I" : "Q";
}

}  // namespace detail

// Shares `count` items of host memory with Python without a copy: a
// memoryview (NumPy: numpy.frombuffer(view, dtype)). `on_release` runs once,
// when Python has let go of the memory (on that thread, with the GIL held), at
// the latest at shutdown; the memory must stay valid until then. Memory that a
// daemon Python thread can still reach at shutdown (its locals and arguments,
// the globals of the modules whose functions it runs) is never let go, since
// CPython freezes daemon threads: `on_release` never runs. Throws Error.
template <class T>
Object share_memory(T *data, size_t count, bool writable, std::function<void()> on_release = {}) {
  auto *callback = new std::function<void()>(std::move(on_release));
  pyb_free_fn thunk = [](void *user_data) {
    auto *held = static_cast<std::function<void()> *>(user_data);
    try {
      if (*held) (*held)();
    } catch (...) {
      // Python is freeing the memory: nowhere to report to, and it must not unwind into CPython.
    }
    delete held;
  };
  pyb_object out = 0;
  pyb_status status = pyb_buffer_from_host(const_cast<std::remove_const_t<T> *>(data), count * sizeof(T),
                                           detail::format_of<std::remove_const_t<T>>(), sizeof(T),
                                           writable ? PYB_BUFFER_WRITABLE : 0, thunk, callback, &out);
  if (status != PYB_OK) {
    delete callback;
    detail::check(status);
  }
  return Object(out);
}

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

#endif  // PYBRIDGE_HPP
