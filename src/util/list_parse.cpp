#include "util/list_parse.h"

#include <algorithm>
#include <stdexcept>

#include "util/error.h"

namespace optiq {

std::vector<std::string> split_list(const std::string& list, const char* option) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    std::string item = list.substr(start, comma - start);
    if (item.empty()) throw InputError(option, std::nullopt, "'" + list + "' has an empty item");
    items.push_back(std::move(item));
    start = comma + 1;
  }
  return items;
}

namespace {

// Each item of the list read whole by parse (std::stoi, std::stod, ...); `what` names the kind
// of number in the error.
template <class T, class Parse>
std::vector<T> parse_number_list(const std::string& list, const char* option, Parse parse, const char* what) {
  std::vector<T> out;
  for (const std::string& item : split_list(list, option)) {
    size_t used = 0;
    T value{};
    try {
      value = parse(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw InputError(option, std::nullopt, "'" + item + "' is not " + what);
    out.push_back(value);
  }
  return out;
}

}  // namespace

std::vector<int> parse_int_list(const std::string& list, const char* option) {
  return parse_number_list<int>(
      list, option, [](const std::string& s, size_t* used) { return std::stoi(s, used); }, "a whole number");
}

std::vector<double> parse_double_list(const std::string& list, const char* option) {
  return parse_number_list<double>(
      list, option, [](const std::string& s, size_t* used) { return std::stod(s, used); }, "a number");
}

}  // namespace optiq
