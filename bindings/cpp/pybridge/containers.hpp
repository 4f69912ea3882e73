// pybridge/containers.hpp: tuples, lists and dicts from C++ values and ranges.
// Part of the C++ wrapper: include "pybridge.hpp", which includes every part.

#ifndef PYBRIDGE_CONTAINERS_HPP
#define PYBRIDGE_CONTAINERS_HPP

#include <array>
#include <optional>
#include <utility>
#include <vector>

#include "pybridge.h"
#include "errors.hpp"
#include "objects.hpp"

namespace pybridge {

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

}  // namespace pybridge

#endif  // PYBRIDGE_CONTAINERS_HPP
