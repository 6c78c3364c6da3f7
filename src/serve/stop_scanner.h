// The text a client may see of a continuation that is still being decoded. Each step hands in
// the whole continuation decoded so far; the scanner returns what is new and safe to send:
// it cuts the text before the first stop sequence (which is never sent), and holds back a tail
// that could still grow into a stop sequence or that ends inside a UTF-8 character.
#pragma once

#include <string>
#include <vector>

namespace optiq::serve {

class StopScanner {
 public:
  explicit StopScanner(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // `text`: the continuation so far (it only grows). Returns the bytes to send now, maybe none.
  // Once a stop sequence is found, stopped() is true and later calls return nothing.
  std::string update(const std::string& text);
  // Generation ended without a stop sequence: everything still held back.
  std::string finish(const std::string& text);

  bool stopped() const { return stopped_; }
  const std::string& matched() const { return matched_; }  // the stop sequence found

 private:
  std::vector<std::string> stops_;
  size_t sent_ = 0;  // bytes of the continuation already returned
  bool stopped_ = false;
  std::string matched_;
};

}  // namespace optiq::serve
