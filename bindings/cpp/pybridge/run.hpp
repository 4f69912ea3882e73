// pybridge/run.hpp: running code: run, eval, scopes, imports.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_RUN_HPP
#define PYBRIDGE_RUN_HPP

#include <string>

#include "pybridge.h"
#include "errors.hpp"
#include "objects.hpp"

namespace pybridge {

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

}  // namespace pybridge

#endif  // PYBRIDGE_RUN_HPP
