// The measured sensitivities of a convert run, kept on disk as they are measured so that a run
// killed at any point (kill -9 included) resumes without measuring anything twice.
//
// The file is JSON lines: a header object identifying what was measured (model, calibration
// tokens, options; each a hash or value), then one object per measurement
// {"tensor": NAME, "type": "Q4_K", "kl": nats, "seconds": s}, each appended with one write()
// and fsync'd. A torn last line (killed mid-write) is cut off on reopening. A header that
// differs from the current run's means the file measured something else: it is moved aside
// and the reason is reported.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "io/ggml_type.h"

namespace optiq::sensitivity {

// The header's "version": 2 since a candidate of a tensor's stored type means its stored bytes
// (version 1 measured it requantized); files of another version are measured again.
inline constexpr int kCheckpointVersion = 2;

// A checkpoint file as it is on disk: the header line and every complete measurement line.
struct CheckpointContents {
  nlohmann::json header;  // the first line (null when the file is empty)
  // (tensor, type name) -> mean KL, nats; the type is a ggml type ("q4_K") or a KV cache type
  // ("tq3") of optiq kv-cache.
  std::map<std::pair<std::string, std::string>, double> kl;
  double seconds = 0;      // measurement time of the entries, summed
  size_t n_lines = 0;      // complete lines, header included
  uint64_t complete_bytes = 0;  // bytes up to the last newline (the rest is a torn write)
};
// Throws InputError when a line after the header is not a measurement.
CheckpointContents read_checkpoint(const std::filesystem::path& path);

class SensitivityCheckpoint {
 public:
  // `header`: flat JSON object; a stored header must equal it key by key to be resumed.
  // `read_only`: load a matching file if there is one, never create, move or append
  // (measurements are then kept in memory only; for --dry-run).
  SensitivityCheckpoint(std::filesystem::path path, nlohmann::json header, bool read_only);
  ~SensitivityCheckpoint();
  SensitivityCheckpoint(const SensitivityCheckpoint&) = delete;
  SensitivityCheckpoint& operator=(const SensitivityCheckpoint&) = delete;

  std::optional<double> find(const std::string& tensor, GgmlType type) const;
  std::optional<double> find(const std::string& tensor, const std::string& type) const;
  // Records a measurement (durably, unless read-only).
  void add(const std::string& tensor, GgmlType type, double kl, double seconds);
  void add(const std::string& tensor, const std::string& type, double kl, double seconds);

  size_t n_resumed() const { return n_resumed_; }  // measurements loaded from the file
  // Why an existing file was not resumed ("" when it was, or there was none), e.g.
  // "the calibration tokens differ".
  const std::string& invalidated() const { return invalidated_; }
  const std::filesystem::path& path() const { return path_; }
  // Seconds spent on the loaded measurements when they were made.
  double resumed_seconds() const { return resumed_seconds_; }

 private:
  void load(const nlohmann::json& header);
  void create(const nlohmann::json& header);

  std::filesystem::path path_;
  bool read_only_ = false;
  int fd_ = -1;  // open for appending, or -1
  std::map<std::pair<std::string, std::string>, double> kl_;  // (tensor, type name) -> mean KL, nats
  size_t n_resumed_ = 0;
  double resumed_seconds_ = 0;
  std::string invalidated_;
};

}  // namespace optiq::sensitivity
