// pybridge/buffers.hpp: zero-copy views of Python memory and host memory shared with Python.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_BUFFERS_HPP
#define PYBRIDGE_BUFFERS_HPP

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "pybridge.h"
#include "errors.hpp"
#include "objects.hpp"

namespace pybridge {

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

}  // namespace pybridge

#endif  // PYBRIDGE_BUFFERS_HPP
