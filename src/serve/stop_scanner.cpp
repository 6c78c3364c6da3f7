#include "serve/stop_scanner.h"

#include <algorithm>

#include "util/utf8.h"

namespace optiq::serve {

std::string StopScanner::update(const std::string& text) {
  if (stopped_) return {};
  // The earliest stop sequence anywhere in the text (a held-back tail may complete one that
  // began before the newest token).
  size_t first = std::string::npos;
  for (const std::string& s : stops_) {
    const size_t at = text.find(s);
    if (at != std::string::npos && at < first) {
      first = at;
      matched_ = s;
    }
  }
  if (first != std::string::npos) {
    stopped_ = true;
    const size_t end = std::max(first, sent_);
    std::string out = text.substr(sent_, end - sent_);
    sent_ = end;
    return out;
  }
  size_t safe = complete_utf8_prefix(text);
  // Hold back the longest tail that is a proper prefix of a stop sequence.
  size_t hold = 0;
  for (const std::string& s : stops_)
    for (size_t k = std::min(s.size() - 1, safe); k > hold; --k)
      if (text.compare(safe - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  safe -= hold;
  if (safe <= sent_) return {};
  std::string out = text.substr(sent_, safe - sent_);
  sent_ = safe;
  return out;
}

std::string StopScanner::finish(const std::string& text) {
  if (stopped_ || text.size() <= sent_) return {};
  std::string out = text.substr(sent_);
  sent_ = text.size();
  return out;
}

}  // namespace optiq::serve
