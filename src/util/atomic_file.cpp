#include "util/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "util/error.h"

namespace optiq {
namespace {

constexpr size_t kBufferBytes = 8u << 20;

// Temp files that a signal handler must remove. Fixed storage because a handler may not
// allocate; a slot is live while its flag is set.
constexpr int kMaxPending = 16;
constexpr size_t kMaxPath = 4096;
std::array<std::array<char, kMaxPath>, kMaxPending> g_pending_paths;
std::array<std::atomic<bool>, kMaxPending> g_pending_live;
std::once_flag g_handlers_installed;

extern "C" void remove_pending_and_reraise(int sig) {
  for (int i = 0; i < kMaxPending; ++i)
    if (g_pending_live[i].load()) ::unlink(g_pending_paths[i].data());
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_handlers() {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction sa {};
    sa.sa_handler = remove_pending_and_reraise;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

int register_pending(const std::string& path) {
  std::call_once(g_handlers_installed, install_handlers);
  if (path.size() >= kMaxPath) return -1;
  for (int i = 0; i < kMaxPending; ++i) {
    bool expected = false;
    if (!g_pending_live[i].load()) {
      std::memcpy(g_pending_paths[i].data(), path.c_str(), path.size() + 1);
      if (g_pending_live[i].compare_exchange_strong(expected, true)) return i;
    }
  }
  return -1;
}

}  // namespace

AtomicFile::AtomicFile(std::string target_path) : target_(std::move(target_path)) {
  namespace fs = std::filesystem;
  fs::path target(target_);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  temp_ = (dir / ("." + target.filename().string() + ".optiq-tmp-" + std::to_string(::getpid())))
              .string();
  fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw RuntimeError("cannot create " + temp_ + ": " + std::strerror(errno));
  slot_ = register_pending(temp_);
  buffer_.reserve(kBufferBytes);
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::write(const void* data, size_t n) {
  const auto* p = static_cast<const std::byte*>(data);
  written_ += n;
  if (buffer_.size() + n < kBufferBytes) {
    buffer_.insert(buffer_.end(), p, p + n);
    return;
  }
  flush();
  while (n > 0) {
    ssize_t k = ::write(fd_, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) throw RuntimeError("cannot write " + temp_ + ": " + std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void AtomicFile::write_zeros(size_t n) {
  static const std::array<std::byte, 256> zeros{};
  while (n > 0) {
    size_t k = n < zeros.size() ? n : zeros.size();
    write(zeros.data(), k);
    n -= k;
  }
}

void AtomicFile::flush() {
  const std::byte* p = buffer_.data();
  size_t n = buffer_.size();
  while (n > 0) {
    ssize_t k = ::write(fd_, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) throw RuntimeError("cannot write " + temp_ + ": " + std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
  buffer_.clear();
}

void AtomicFile::commit() {
  try {
    flush();
    if (::fsync(fd_) != 0) throw RuntimeError("cannot sync " + temp_ + ": " + std::strerror(errno));
    if (::close(fd_) != 0) {
      fd_ = -1;
      throw RuntimeError("cannot close " + temp_ + ": " + std::strerror(errno));
    }
    fd_ = -1;
    if (::rename(temp_.c_str(), target_.c_str()) != 0)
      throw RuntimeError("cannot rename " + temp_ + " to " + target_ + ": " + std::strerror(errno));
  } catch (...) {
    discard();
    throw;
  }
  if (slot_ >= 0) g_pending_live[slot_].store(false);
  slot_ = -1;
  temp_.clear();
}

void AtomicFile::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  if (slot_ >= 0) g_pending_live[slot_].store(false);
  slot_ = -1;
  temp_.clear();
}

void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  AtomicFile f(path.string());
  f.write(bytes.data(), bytes.size());
  f.commit();
}

}  // namespace optiq
