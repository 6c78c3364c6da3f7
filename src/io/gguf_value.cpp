#include "io/gguf.h"

#include <cstdio>

namespace optiq {

const char* gguf_value_type_name(GgufValueType t) {
  static const char* const kNames[] = {"u8",  "i8",     "u16",   "i16", "u32", "i32", "f32",
                                       "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(t);
  return i < std::size(kNames) ? kNames[i] : "?";
}

std::optional<int64_t> GgufValue::as_int() const {
  return std::visit(
      [](const auto& x) -> std::optional<int64_t> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
          if constexpr (std::is_same_v<T, uint64_t>)
            if (x > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
          return static_cast<int64_t>(x);
        }
        return std::nullopt;
      },
      v);
}

std::optional<double> GgufValue::as_double() const {
  return std::visit(
      [](const auto& x) -> std::optional<double> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
          return static_cast<double>(x);
        return std::nullopt;
      },
      v);
}

std::optional<bool> GgufValue::as_bool() const {
  if (auto* b = std::get_if<bool>(&v)) return *b;
  return std::nullopt;
}

std::string GgufValue::to_display(size_t max_items) const {
  return std::visit(
      [&](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          std::string s = "\"";
          for (char c : x.substr(0, 200)) s += (c == '\n') ? std::string("\\n") : std::string(1, c);
          return s + (x.size() > 200 ? "...\"" : "\"");
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          std::string s = "[";
          for (size_t i = 0; i < x.items.size() && i < max_items; ++i)
            s += (i ? ", " : "") + x.items[i].to_display(max_items);
          if (x.items.size() > max_items)
            s += ", ... (" + std::to_string(x.items.size()) + " " +
                 gguf_value_type_name(x.elem_type) + ")";
          return s + "]";
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else if constexpr (std::is_floating_point_v<T>) {
          char buf[32];
          std::snprintf(buf, sizeof buf, "%g", static_cast<double>(x));
          return buf;
        } else {
          return std::to_string(x);
        }
      },
      v);
}

bool operator==(const GgufArray& a, const GgufArray& b) {
  return a.elem_type == b.elem_type && a.items == b.items;
}

bool GgufValue::operator==(const GgufValue& other) const { return v == other.v; }

const GgufValue* GgufMetadata::find(std::string_view key) const {
  for (const auto& [k, val] : entries_)
    if (k == key) return &val;
  return nullptr;
}

void GgufMetadata::set(std::string key, GgufValue value) {
  for (auto& [k, val] : entries_)
    if (k == key) {
      val = std::move(value);
      return;
    }
  entries_.emplace_back(std::move(key), std::move(value));
}

bool GgufMetadata::erase(std::string_view key) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it)
    if (it->first == key) {
      entries_.erase(it);
      return true;
    }
  return false;
}

std::optional<std::string> GgufMetadata::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (!v || !v->as_string()) return std::nullopt;
  return *v->as_string();
}

std::optional<int64_t> GgufMetadata::get_int(std::string_view key) const {
  const GgufValue* v = find(key);
  return v ? v->as_int() : std::nullopt;
}

std::optional<double> GgufMetadata::get_double(std::string_view key) const {
  const GgufValue* v = find(key);
  return v ? v->as_double() : std::nullopt;
}

}  // namespace optiq
