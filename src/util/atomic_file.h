// Output files appear whole or not at all. Data goes to a hidden temp file beside the target
// and is renamed over it by commit(); a destructor without commit, an exception, or Ctrl-C
// (SIGINT/SIGTERM/SIGHUP) removes the temp file, so no partial output is ever left behind.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace optiq {

class AtomicFile {
 public:
  explicit AtomicFile(std::string target_path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void write_zeros(size_t n);
  uint64_t tell() const { return written_; }  // bytes written so far, buffered ones included

  // Flushes, fsyncs and renames the temp file to the target. Throws RuntimeError on failure,
  // in which case the temp file is removed and the target is untouched.
  void commit();

  const std::string& target_path() const { return target_; }
  const std::string& temp_path() const { return temp_; }

 private:
  void flush();
  void discard() noexcept;

  std::string target_;
  std::string temp_;
  int fd_ = -1;
  int slot_ = -1;                  // index in the signal-cleanup table
  std::vector<std::byte> buffer_;  // pending bytes, flushed at kBufferBytes
  uint64_t written_ = 0;
};

// Writes `bytes` as the whole file at `path` through an AtomicFile.
void write_file_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace optiq
