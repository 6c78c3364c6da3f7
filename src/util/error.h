// Errors that reach the user. Every failure caused by a bad input names the file, the byte
// offset or field where it was found, and what was expected; the CLI prints it on one line and
// exits with kExitBadInput. Anything else (I/O, network) is a RuntimeError, exit 1.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace optiq {

inline constexpr int kExitBadInput = 2;
inline constexpr int kExitFailure = 1;

// A file (or other user input) does not follow its format.
class InputError : public std::runtime_error {
 public:
  InputError(std::string file, std::optional<uint64_t> offset, const std::string& what)
      : std::runtime_error(format(file, offset, what)), file_(std::move(file)), offset_(offset) {}

  const std::string& file() const { return file_; }
  std::optional<uint64_t> offset() const { return offset_; }

 private:
  static std::string format(const std::string& file, std::optional<uint64_t> offset,
                            const std::string& what) {
    std::string s = file;
    if (offset) s += ": offset " + std::to_string(*offset);
    return s + ": " + what;
  }
  std::string file_;
  std::optional<uint64_t> offset_;
};

// A failure of the environment rather than of the input: disk full, network down.
class RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace optiq
