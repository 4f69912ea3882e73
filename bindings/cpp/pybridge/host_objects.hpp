// pybridge/host_objects.hpp: C++ objects handed to Python and back, type-checked.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_HOST_OBJECTS_HPP
#define PYBRIDGE_HOST_OBJECTS_HPP

#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <unordered_set>
#include <utility>

#include "pybridge.h"
#include "errors.hpp"
#include "host_functions.hpp"
#include "kinds.hpp"
#include "objects.hpp"

namespace pybridge {

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

}  // namespace pybridge

#endif  // PYBRIDGE_HOST_OBJECTS_HPP
