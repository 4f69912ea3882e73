// pybridge/objects.hpp: Object (an owning handle), Value (what crosses the boundary), and calls.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_OBJECTS_HPP
#define PYBRIDGE_OBJECTS_HPP

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pybridge.h"
#include "errors.hpp"
#include "kinds.hpp"

namespace pybridge {

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
    } else if constexpr (std::is_signed_v<T> && sizeof(T) > sizeof(int64_t)) {
      // __int128 (gnu++17): as checked as the other way (as<T>()).
      if (i < static_cast<T>(std::numeric_limits<int64_t>::min()) ||
          i > static_cast<T>(std::numeric_limits<int64_t>::max())) {
        throw Error(PYB_E_OUT_OF_RANGE, "signed value does not fit in int64");
      }
    }
    scalar_.int64 = static_cast<int64_t>(i);
  }
  Value(double d) noexcept : kind_(Kind::float64) { scalar_.float64 = d; }
  Value(std::string s) noexcept : kind_(Kind::str), text_(std::move(s)) {}
  Value(std::string_view s) : kind_(Kind::str), text_(s) {}
  // A str; a null pointer is refused with Error PYB_E_NULL_ARGUMENT (write
  // Value(nullptr) or Value() for None).
  Value(const char *s) : kind_(Kind::str), text_(checked_c_string(s)) {}
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
  // std::string, std::vector<std::byte>. An int that T cannot hold throws
  // Error PYB_E_OUT_OF_RANGE (as<uint8_t>() of 300, as<uint64_t>() of -1).
  template <class T>
  T as() const {
    if constexpr (std::is_same_v<T, bool>) {
      return to_bool();
    } else if constexpr (std::is_integral_v<T>) {
      return detail::narrow_int<T>(to_int64());
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
  static const char *checked_c_string(const char *s) {
    if (s == nullptr) {
      throw Error(PYB_E_NULL_ARGUMENT, "Value(const char *): the pointer is null");
    }
    return s;
  }

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

inline std::optional<Value> Object::next() const {
  pyb_value out{};
  bool done = false;
  detail::check(pyb_iter_next(handle_, &out, &done));
  if (done) {
    return std::nullopt;
  }
  return Value::adopt(out);
}

}  // namespace pybridge

#endif  // PYBRIDGE_OBJECTS_HPP
