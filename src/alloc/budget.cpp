#include "alloc/budget.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace optiq::alloc {

std::optional<uint64_t> parse_byte_size(const std::string& text) {
  const char* begin = text.c_str();
  char* end = nullptr;
  const double value = std::strtod(begin, &end);
  if (end == begin || !std::isfinite(value) || value <= 0) return std::nullopt;
  std::string unit(end);
  std::erase_if(unit, [](unsigned char c) { return std::isspace(c); });
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "K" || unit == "KB") scale = 1e3;
  else if (unit == "M" || unit == "MB") scale = 1e6;
  else if (unit == "G" || unit == "GB") scale = 1e9;
  else if (unit == "KIB") scale = 1024.0;
  else if (unit == "MIB") scale = 1024.0 * 1024.0;
  else if (unit == "GIB") scale = 1024.0 * 1024.0 * 1024.0;
  else return std::nullopt;
  const double bytes = value * scale;
  if (bytes >= 1.8e19) return std::nullopt;
  return static_cast<uint64_t>(bytes);
}

uint64_t bytes_for_bpw(double bpw, uint64_t n_params) {
  return static_cast<uint64_t>(std::floor(bpw * static_cast<double>(n_params) / 8.0));
}

double bits_per_weight(uint64_t bytes, uint64_t n_params) {
  return n_params ? 8.0 * static_cast<double>(bytes) / static_cast<double>(n_params) : 0.0;
}

}  // namespace optiq::alloc
