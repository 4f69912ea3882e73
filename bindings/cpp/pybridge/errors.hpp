// pybridge/errors.hpp: the Error every failing call throws, and detail::check.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_ERRORS_HPP
#define PYBRIDGE_ERRORS_HPP

#include <cstddef>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pybridge.h"

namespace pybridge {

class Object;  // objects.hpp

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

  [[nodiscard]] pyb_status status() const noexcept { return status_; }
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
  // when there is none. Defined in objects.hpp, with Object.
  Object exception() const;
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

}  // namespace pybridge

#endif  // PYBRIDGE_ERRORS_HPP
