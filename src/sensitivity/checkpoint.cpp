#include "sensitivity/checkpoint.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "util/atomic_file.h"
#include "util/error.h"

namespace optiq::sensitivity {
namespace {

// The first key whose value differs between two headers, for the message.
std::string header_difference(const nlohmann::json& stored, const nlohmann::json& wanted) {
  if (!stored.is_object()) return "its first line is not a header object";
  for (const auto& [key, value] : wanted.items()) {
    if (!stored.contains(key)) return "it has no '" + key + "'";
    if (stored[key] != value) return "'" + key + "' differs (" + stored[key].dump() + " there, " + value.dump() + " now)";
  }
  for (const auto& [key, value] : stored.items())
    if (!wanted.contains(key)) return "it has an unknown field '" + key + "'";
  return "";
}

}  // namespace

SensitivityCheckpoint::SensitivityCheckpoint(std::filesystem::path path, nlohmann::json header, bool read_only)
    : path_(std::move(path)), read_only_(read_only) {
  if (std::filesystem::exists(path_)) load(header);
  if (!read_only_ && fd_ < 0) create(header);
}

SensitivityCheckpoint::~SensitivityCheckpoint() {
  if (fd_ >= 0) ::close(fd_);
}

CheckpointContents read_checkpoint(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();

  // Lines up to the last newline are complete; anything after it is a torn write.
  CheckpointContents c;
  c.complete_bytes = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  size_t pos = 0;
  while (pos < c.complete_bytes) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++c.n_lines;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (c.n_lines == 1) {
      c.header = j;
      continue;
    }
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string() || !j.contains("tensor") ||
        !j["tensor"].is_string() || !j.contains("kl") || !j["kl"].is_number())
      throw InputError(path.string(), std::nullopt,
                       "line " + std::to_string(c.n_lines) + " is not a measurement (delete the file to measure again)");
    c.kl[{j["tensor"].get<std::string>(), j["type"].get<std::string>()}] = j["kl"].get<double>();
    if (j.contains("seconds") && j["seconds"].is_number()) c.seconds += j["seconds"].get<double>();
  }
  return c;
}

void SensitivityCheckpoint::load(const nlohmann::json& header) {
  CheckpointContents c = read_checkpoint(path_);
  const std::string why = c.n_lines == 0 ? "it is empty" : header_difference(c.header, header);
  if (!why.empty()) {
    invalidated_ = why;
    if (!read_only_) {
      std::filesystem::path stale = path_;
      stale += ".stale";
      std::filesystem::rename(path_, stale);
    }
    return;
  }
  kl_ = std::move(c.kl);
  n_resumed_ = kl_.size();
  resumed_seconds_ = c.seconds;
  if (read_only_) return;
  if (c.complete_bytes < std::filesystem::file_size(path_)) std::filesystem::resize_file(path_, c.complete_bytes);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw RuntimeError(path_.string() + ": cannot open for appending: " + std::strerror(errno));
}

void SensitivityCheckpoint::create(const nlohmann::json& header) {
  AtomicFile file(path_.string());
  const std::string line = header.dump() + "\n";
  file.write(line.data(), line.size());
  file.commit();
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw RuntimeError(path_.string() + ": cannot open for appending: " + std::strerror(errno));
}

std::optional<double> SensitivityCheckpoint::find(const std::string& tensor, GgmlType type) const {
  return find(tensor, std::string(ggml_type_name(type)));
}

std::optional<double> SensitivityCheckpoint::find(const std::string& tensor, const std::string& type) const {
  const auto it = kl_.find({tensor, type});
  if (it == kl_.end()) return std::nullopt;
  return it->second;
}

void SensitivityCheckpoint::add(const std::string& tensor, GgmlType type, double kl, double seconds) {
  add(tensor, std::string(ggml_type_name(type)), kl, seconds);
}

void SensitivityCheckpoint::add(const std::string& tensor, const std::string& type, double kl, double seconds) {
  kl_[{tensor, type}] = kl;
  if (fd_ < 0) return;
  nlohmann::json j = {{"tensor", tensor}, {"type", type}, {"kl", kl}, {"seconds", seconds}};
  const std::string line = j.dump() + "\n";
  if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(fd_) != 0)
    throw RuntimeError(path_.string() + ": cannot append a measurement: " + std::strerror(errno));
}

}  // namespace optiq::sensitivity
