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

std::vector<int> parse_int_list(const std::string& list, const char* option) {
  std::vector<int> out;
  for (const std::string& item : split_list(list, option)) {
    size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw InputError(option, std::nullopt, "'" + item + "' is not a whole number");
    out.push_back(value);
  }
  return out;
}

}  // namespace optiq
