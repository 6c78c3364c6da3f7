// A read-only memory map of a whole file. Model files are mapped, never read into RAM, so
// opening a 10 GB model costs page tables, not memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace optiq {

class MappedFile {
 public:
  // Throws InputError when the file cannot be opened or is not a regular file.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const std::string& path() const { return path_; }
  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }

 private:
  std::string path_;
  const std::byte* data_ = nullptr;  // [size_] bytes, nullptr for an empty file
  size_t size_ = 0;
};

}  // namespace optiq
