#include "io/hub.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "io/http.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/sha256.h"

namespace optiq::hub {
namespace fs = std::filesystem;
namespace {

constexpr const char* kDefaultEndpoint = "https://huggingface.co";
constexpr int kMaxRedirects = 10;
constexpr const char* kSingleWeights = "model.safetensors";
constexpr const char* kWeightIndex = "model.safetensors.index.json";
// Everything besides weights that a conversion reads, in download order: config first, so a
// wrong or inaccessible repo fails on a small file.
constexpr std::array kSmallFiles = {
    "config.json",       "generation_config.json",  "tokenizer.json",      "tokenizer_config.json",
    "tokenizer.model",   "vocab.json",              "merges.txt",          "added_tokens.json",
    "special_tokens_map.json", "chat_template.jinja",
};

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string trim(std::string s) {
  const auto space = [](unsigned char c) { return std::isspace(c) != 0; };
  s.erase(s.begin(), std::find_if_not(s.begin(), s.end(), space));
  s.erase(std::find_if_not(s.rbegin(), s.rend(), space).base(), s.end());
  return s;
}

// huggingface_hub's reading of boolean variables, so both tools agree on HF_HUB_OFFLINE.
bool env_is_true(const char* name) {
  std::string v = env(name);
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::toupper(c); });
  return v == "1" || v == "ON" || v == "YES" || v == "TRUE";
}

fs::path home_dir() {
  if (const std::string home = env("HOME"); !home.empty()) return home;
  const passwd* pw = getpwuid(getuid());
  return pw ? fs::path(pw->pw_dir) : fs::path("/");
}

fs::path expand_user(const std::string& p) {
  if (p == "~" || p.starts_with("~/")) return home_dir() / p.substr(std::min<size_t>(2, p.size()));
  return p;
}

bool is_hex(const std::string& s, size_t length) {
  return s.size() == length && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}
bool is_commit_sha(const std::string& s) { return is_hex(s, 40); }

// One part of "org/name" as the hub accepts it: word characters, '-' and '.', starting and
// ending with a word character, without "--" or "..".
bool valid_repo_part(const std::string& s) {
  const auto word = [](unsigned char c) { return std::isalnum(c) || c == '_'; };
  return !s.empty() && word(s.front()) && word(s.back()) &&
         std::all_of(s.begin(), s.end(),
                     [&](unsigned char c) { return word(c) || c == '-' || c == '.'; }) &&
         s.find("--") == std::string::npos && s.find("..") == std::string::npos;
}

// "org/name" within the hub's limits.
bool valid_repo_id(const std::string& repo) {
  const size_t slash = repo.find('/');
  return slash != std::string::npos && repo.size() <= 96 && !repo.ends_with(".git") &&
         valid_repo_part(repo.substr(0, slash)) && valid_repo_part(repo.substr(slash + 1));
}

// A '/'-separated path that stays inside the directory it is joined to: not absolute, no empty,
// "." or ".." component, no control character or backslash. Names from the server (etags,
// commits, file names) and the user's revision must pass this before they become cache paths.
bool safe_relative_path(const std::string& s) {
  if (s.empty() || s.front() == '/' || s.back() == '/' || s.find("//") != std::string::npos)
    return false;
  if (std::any_of(s.begin(), s.end(),
                  [](unsigned char c) { return c < 0x20 || c == 0x7f || c == '\\'; }))
    return false;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find('/', start), s.size());
    const std::string part = s.substr(start, end - start);
    if (part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}
bool safe_component(const std::string& s) {
  return safe_relative_path(s) && s.find('/') == std::string::npos;
}

std::string describe(const HubId& id) { return id.repo + "@" + id.revision; }

// One repository's folder in the cache, named and laid out as huggingface_hub does.
struct RepoCache {
  fs::path root;   // {cache}/models--{org}--{name}
  fs::path locks;  // {cache}/.locks/models--{org}--{name}

  RepoCache(const fs::path& cache_dir, const std::string& repo) {
    std::string folder = "models--" + repo;
    folder.replace(folder.find('/'), 1, "--");
    root = cache_dir / folder;
    locks = cache_dir / ".locks" / folder;
  }
  fs::path blob(const std::string& etag) const { return root / "blobs" / etag; }
  fs::path ref(const std::string& revision) const { return root / "refs" / revision; }
  fs::path snapshot(const std::string& commit) const { return root / "snapshots" / commit; }
};

// The snapshot a revision points at in the cache, if the cache knows the revision.
std::optional<fs::path> cached_snapshot(const HubId& id, const RepoCache& cache) {
  std::string commit;
  if (std::ifstream ref(cache.ref(id.revision)); ref) {
    std::getline(ref, commit);
    commit = trim(commit);
  } else if (is_commit_sha(id.revision)) {
    commit = id.revision;
  }
  if (!safe_component(commit) || !fs::is_directory(cache.snapshot(commit))) return std::nullopt;
  return cache.snapshot(commit);
}

// Shard file names an index maps tensors to, relative to the index's folder.
std::vector<std::string> shards_in_index(const fs::path& index_path) {
  std::ifstream in(index_path);
  if (!in) throw RuntimeError(index_path.string() + ": cannot read: " + std::strerror(errno));
  const nlohmann::json index = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
    throw InputError(index_path.string(), std::nullopt, "expected an object with a \"weight_map\"");
  }
  std::set<std::string> shards;
  for (const auto& [tensor, file] : index["weight_map"].items()) {
    if (!file.is_string() || !safe_relative_path(file.get<std::string>())) {
      throw InputError(index_path.string(), std::nullopt,
                       "weight_map[\"" + tensor + "\"] is not a relative file name");
    }
    shards.insert(file.get<std::string>());
  }
  return {shards.begin(), shards.end()};
}

// What a snapshot lacks for a conversion: config.json and complete weights.
std::vector<std::string> missing_for_conversion(const fs::path& snapshot) {
  std::vector<std::string> missing;
  if (!fs::exists(snapshot / "config.json")) missing.push_back("config.json");
  if (fs::exists(snapshot / kSingleWeights)) return missing;
  if (!fs::exists(snapshot / kWeightIndex)) {
    missing.push_back(std::string(kSingleWeights) + " (or " + kWeightIndex + " and its shards)");
    return missing;
  }
  for (const std::string& shard : shards_in_index(snapshot / kWeightIndex)) {
    if (!fs::exists(snapshot / shard)) missing.push_back(shard);
  }
  return missing;
}

std::string join(const std::vector<std::string>& items) {
  std::string s;
  for (const std::string& item : items) s += (s.empty() ? "" : ", ") + item;
  return s;
}

// An exclusive flock on {cache}/.locks/.../{etag}.lock, the lock huggingface_hub's FileLock
// takes, so optiq and Python never append to the same .incomplete file at once.
class BlobLock {
 public:
  explicit BlobLock(const fs::path& path) {
    fs::create_directories(path.parent_path());
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw RuntimeError(path.string() + ": cannot open lock: " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    std::cerr << "optiq: waiting for another process downloading into the same cache ("
              << path.string() << ")\n";
    if (::flock(fd_, LOCK_EX) != 0) {
      ::close(fd_);
      throw RuntimeError(path.string() + ": cannot lock: " + std::strerror(errno));
    }
  }
  ~BlobLock() { ::close(fd_); }
  BlobLock(const BlobLock&) = delete;
  BlobLock& operator=(const BlobLock&) = delete;

 private:
  int fd_ = -1;
};

// Appends to blobs/{etag}.incomplete; the data stays there when a download breaks off, which is
// what lets the next run resume it.
class PartialFile {
 public:
  explicit PartialFile(fs::path path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open");
  }
  ~PartialFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  PartialFile(const PartialFile&) = delete;
  PartialFile& operator=(const PartialFile&) = delete;

  void append(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail("cannot write");
      data.remove_prefix(static_cast<size_t>(n));
    }
  }
  void truncate() {
    if (::ftruncate(fd_, 0) != 0) fail("cannot truncate");
  }
  const fs::path& path() const { return path_; }
  // Data must be on disk before the rename publishes it as a blob.
  void close() {
    const bool ok = ::fsync(fd_) == 0;
    const int saved = errno;
    ::close(fd_);
    fd_ = -1;
    errno = saved;
    if (!ok) fail("cannot sync");
  }

 private:
  [[noreturn]] void fail(const char* what) {
    throw RuntimeError(path_.string() + ": " + what + ": " + std::strerror(errno));
  }
  fs::path path_;
  int fd_ = -1;
};

// What a HEAD on resolve/{commit}/{file} says about the file.
struct FileMeta {
  std::string etag;  // unquoted; for LFS files the sha256 of the content
  bool lfs = false;
  uint64_t size = 0;  // bytes
};

class Downloader {
 public:
  Downloader(const HubId& id, const HubOptions& options)
      : id_(id), options_(options), cache_(options.cache_dir, id.repo),
        endpoint_origin_(http::origin(options.endpoint)) {}

  struct RepoInfo {
    std::string commit;
    std::vector<std::string> files;
  };

  RepoInfo fetch_info() {
    const std::string url = options_.endpoint + "/api/models/" + id_.repo + "/revision/" +
                            http::url_encode(id_.revision, /*keep_slash=*/false);
    const http::Response r = request(url, /*head=*/false, {}, nullptr);
    if (r.status != 200) throw_http_error(r, "repository " + describe(id_));
    const nlohmann::json info = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
    if (!info.is_object() || !info.contains("sha") || !info["sha"].is_string() ||
        !safe_component(info["sha"].get<std::string>()) || !info.contains("siblings") ||
        !info["siblings"].is_array()) {
      throw RuntimeError(url + ": unexpected answer (expected JSON with \"sha\" and \"siblings\")");
    }
    RepoInfo result{info["sha"].get<std::string>(), {}};
    for (const auto& sibling : info["siblings"]) {
      if (sibling.is_object() && sibling.contains("rfilename") && sibling["rfilename"].is_string())
        result.files.push_back(sibling["rfilename"].get<std::string>());
    }
    return result;
  }

  fs::path download(const RepoInfo& info) {
    const std::vector<std::string> needed = files_needed_for_conversion(info.files);
    const auto has = [&](const std::string& f) {
      return std::find(needed.begin(), needed.end(), f) != needed.end();
    };
    if (!has(kSingleWeights) && !has(kWeightIndex)) {
      throw InputError(describe(id_), std::nullopt,
                       std::string("the repository has neither ") + kSingleWeights + " nor " +
                           kWeightIndex + "; optiq converts safetensors weights only");
    }
    for (const std::string& file : needed) fetch_file(info.commit, file);
    if (has(kWeightIndex)) {
      const fs::path index = cache_.snapshot(info.commit) / kWeightIndex;
      for (const std::string& shard : shards_in_index(index)) {
        if (std::find(info.files.begin(), info.files.end(), shard) == info.files.end()) {
          throw RuntimeError(describe(id_) + ": " + kWeightIndex + " names shard " + shard +
                             ", which the repository does not have");
        }
        fetch_file(info.commit, shard);
      }
    }
    // Written last: until the new snapshot is complete, refs/ keeps pointing at the previous
    // one, which offline runs can still use.
    if (id_.revision != info.commit) {
      fs::create_directories(cache_.ref(id_.revision).parent_path());
      AtomicFile ref(cache_.ref(id_.revision).string());
      ref.write(info.commit.data(), info.commit.size());
      ref.commit();
    }
    return cache_.snapshot(info.commit);
  }

 private:
  // Follows redirects by hand so that the token only goes to the endpoint's own origin: LFS
  // files redirect to a storage host that must never see it. A HEAD stops at a redirect to
  // another origin, since the hub puts the LFS metadata on that redirect itself.
  http::Response request(std::string url, bool head, const std::vector<std::string>& headers,
                         std::function<void(long, std::string_view)> on_body) {
    for (int hop = 0; hop <= kMaxRedirects; ++hop) {
      http::Request req{url, head, headers, on_body};
      // Sizes and checksums are those of the stored bytes; a compressed body would match neither.
      req.headers.push_back("Accept-Encoding: identity");
      if (options_.token && http::origin(url) == endpoint_origin_)
        req.headers.push_back("Authorization: Bearer " + *options_.token);
      http::Response r = client_.perform(req);
      const bool redirect = r.status == 301 || r.status == 302 || r.status == 303 ||
                            r.status == 307 || r.status == 308;
      if (!redirect || r.redirect_url.empty()) return r;
      if (head && http::origin(r.redirect_url) != http::origin(url)) return r;
      url = r.redirect_url;
    }
    throw RuntimeError(url + ": more than " + std::to_string(kMaxRedirects) + " redirects");
  }

  [[noreturn]] void throw_http_error(const http::Response& r, const std::string& what) const {
    std::string detail = "HTTP " + std::to_string(r.status);
    if (const std::string m = r.header("x-error-message"); !m.empty()) detail += ": " + m;
    const bool from_hub = http::origin(r.url) == endpoint_origin_;
    if (from_hub && (r.status == 401 || r.status == 403)) {
      throw RuntimeError(
          what + ": access denied (" + detail + "). The repository is gated or private (or does "
          "not exist); " +
          (options_.token ? "the token in HF_TOKEN cannot read it"
                          : std::string("set HF_TOKEN to a token that can read it")) +
          ", and for a gated repository accept its terms on its page at " + options_.endpoint);
    }
    if (from_hub && r.status == 404) {
      throw RuntimeError(what + ": not found on " + options_.endpoint + " (" + detail +
                         "); check the repository id and revision");
    }
    throw RuntimeError(what + ": " + detail + " from " + r.url);
  }

  std::string file_url(const std::string& commit, const std::string& file) const {
    return options_.endpoint + "/" + id_.repo + "/resolve/" +
           http::url_encode(commit, /*keep_slash=*/false) + "/" +
           http::url_encode(file, /*keep_slash=*/true);
  }

  void fetch_file(const std::string& commit, const std::string& file) {
    if (!safe_relative_path(file)) {
      throw RuntimeError(describe(id_) + ": refusing the file name \"" + file +
                         "\", which would leave the snapshot folder");
    }
    // A commit's snapshot never changes, so a file already linked there is final.
    const fs::path pointer = cache_.snapshot(commit) / file;
    if (fs::exists(pointer)) return;
    const std::string url = file_url(commit, file);
    const FileMeta meta = head(url, file + " of " + id_.repo + "@" + commit);
    const fs::path blob = cache_.blob(meta.etag);
    if (!fs::exists(blob)) download_blob(url, file, meta);
    fs::create_directories(pointer.parent_path());
    if (fs::is_symlink(pointer)) fs::remove(pointer);
    // Relative, as huggingface_hub makes them, so the cache folder can be moved or mounted
    // elsewhere.
    fs::create_symlink(blob.lexically_relative(pointer.parent_path()), pointer);
  }

  FileMeta head(const std::string& url, const std::string& what) {
    const http::Response r = request(url, /*head=*/true, {}, nullptr);
    if (r.status >= 400 || r.status < 200) throw_http_error(r, what);
    FileMeta meta;
    std::string etag = r.header("x-linked-etag");
    meta.lfs = !etag.empty();
    if (etag.empty()) etag = r.header("etag");
    if (etag.starts_with("W/")) etag.erase(0, 2);
    etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
    if (!safe_component(etag)) {
      throw RuntimeError(what + ": " + url + " sent no usable ETag (\"" + etag +
                         "\"), which names the file in the cache");
    }
    meta.etag = etag;
    // A redirect's own Content-Length is that of its empty body, not of the file.
    std::string size = r.header("x-linked-size");
    if (size.empty() && r.status == 200) size = r.header("content-length");
    char* end = nullptr;
    meta.size = std::strtoull(size.c_str(), &end, 10);
    if (size.empty() || *end != '\0') {
      throw RuntimeError(what + ": " + url + " sent no file size, so a download could not be "
                         "verified");
    }
    return meta;
  }

  // Downloads into blobs/{etag}.incomplete, resuming what is there, verifies it, and only then
  // renames it to blobs/{etag}: the blob name promises verified content.
  void download_blob(const std::string& url, const std::string& file, const FileMeta& meta) {
    const fs::path blob = cache_.blob(meta.etag);
    fs::create_directories(blob.parent_path());
    BlobLock lock(cache_.locks / (meta.etag + ".lock"));
    if (fs::exists(blob)) return;  // another process finished it while we waited

    const fs::path partial = blob.string() + ".incomplete";
    uint64_t have = fs::exists(partial) ? fs::file_size(partial) : 0;
    if (have > meta.size) {
      fs::remove(partial);
      have = 0;
    }
    // LFS etags are sha256 digests; other files (small, stored in git) are checked by size.
    const bool check_sha = meta.lfs && is_hex(meta.etag, 64);
    Sha256 sha;
    if (check_sha && have > 0) hash_prefix(partial, have, sha);

    PartialFile out(partial);
    if (have < meta.size) {
      try {
        have = transfer(url, file, meta.size, have, out, check_sha ? &sha : nullptr);
      } catch (...) {
        // An empty .incomplete holds nothing to resume; leave blobs/ as it was.
        std::error_code ec;
        if (fs::file_size(partial, ec) == 0 && !ec) fs::remove(partial, ec);
        throw;
      }
    }
    out.close();

    std::string problem;
    if (have != meta.size) {
      problem = "size " + std::to_string(have) + " bytes, expected " + std::to_string(meta.size);
    } else if (check_sha) {
      if (const std::string digest = sha.hex(); digest != meta.etag)
        problem = "sha256 " + digest + ", expected " + meta.etag;
    }
    if (!problem.empty()) {
      fs::remove(partial);  // corrupt: resuming it could never succeed
      throw RuntimeError(file + " of " + describe(id_) + ": downloaded data failed verification (" +
                         problem + "); nothing was stored, run again to retry");
    }
    fs::rename(partial, blob);
  }

  // Appends the file from byte `have` on to `out` (hashing what arrives into `sha` if given);
  // returns how many bytes `out` then holds.
  uint64_t transfer(const std::string& url, const std::string& file, uint64_t size, uint64_t have,
                    PartialFile& out, Sha256* sha) {
    std::vector<std::string> headers;
    if (have > 0) headers.push_back("Range: bytes=" + std::to_string(have) + "-");
    ProgressBar progress(file, size, 1e6, "MB", options_.show_progress, have);
    bool first_chunk = true;
    const auto sink = [&](long status, std::string_view chunk) {
      // 200 instead of 206: the server ignored the Range and sends everything again.
      if (first_chunk && status == 200 && have > 0) {
        out.truncate();
        if (sha) sha->reset();
        have = 0;
        progress = ProgressBar(file, size, 1e6, "MB", options_.show_progress);
      }
      first_chunk = false;
      out.append(chunk);
      if (sha) sha->update(chunk);
      have += chunk.size();
      progress.update(have);
    };
    http::Response r;
    try {
      r = request(url, /*head=*/false, headers, sink);
    } catch (const http::TransportError& e) {
      if (have == 0) throw;
      throw http::TransportError(std::string(e.what()) + "; the " + std::to_string(have) +
                                 " bytes received are kept in " + out.path().string() +
                                 " and the next run resumes from there");
    }
    if (r.status < 200 || r.status >= 300) throw_http_error(r, file + " of " + id_.repo);
    progress.update(have);
    progress.finish();
    return have;
  }

  static void hash_prefix(const fs::path& path, uint64_t bytes, Sha256& sha) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> buffer(1 << 20);
    while (bytes > 0 && in) {
      const uint64_t want = std::min<uint64_t>(bytes, buffer.size());
      in.read(buffer.data(), static_cast<std::streamsize>(want));
      sha.update(std::string_view(buffer.data(), static_cast<size_t>(in.gcount())));
      bytes -= static_cast<uint64_t>(in.gcount());
    }
    if (bytes > 0) throw RuntimeError(path.string() + ": cannot read back partial download");
  }

  HubId id_;
  const HubOptions& options_;
  RepoCache cache_;
  std::string endpoint_origin_;
  http::Client client_;
};

fs::path resolve_offline(const HubId& id, const HubOptions& options, const RepoCache& cache) {
  const std::optional<fs::path> snapshot = cached_snapshot(id, cache);
  if (!snapshot) {
    throw RuntimeError(describe(id) + " is not in the Hugging Face cache " +
                       options.cache_dir.string() + " (no " + cache.ref(id.revision).string() +
                       "), and HF_HUB_OFFLINE=1 forbids downloading it; unset HF_HUB_OFFLINE "
                       "or fill the cache once while online");
  }
  if (const std::vector<std::string> missing = missing_for_conversion(*snapshot);
      !missing.empty()) {
    throw RuntimeError(describe(id) + ": the cached snapshot " + snapshot->string() + " lacks " +
                       join(missing) + ", and HF_HUB_OFFLINE=1 forbids downloading; unset "
                       "HF_HUB_OFFLINE or fill the cache once while online");
  }
  return *snapshot;
}

}  // namespace

HubOptions HubOptions::from_environment() {
  HubOptions o;
  o.endpoint = env("HF_ENDPOINT").empty() ? kDefaultEndpoint : env("HF_ENDPOINT");
  while (o.endpoint.ends_with('/')) o.endpoint.pop_back();

  const fs::path hf_home = !env("HF_HOME").empty() ? expand_user(env("HF_HOME"))
                           : !env("XDG_CACHE_HOME").empty()
                               ? expand_user(env("XDG_CACHE_HOME")) / "huggingface"
                               : home_dir() / ".cache" / "huggingface";
  if (!env("HF_HUB_CACHE").empty()) {
    o.cache_dir = expand_user(env("HF_HUB_CACHE"));
  } else if (!env("HUGGINGFACE_HUB_CACHE").empty()) {  // the name huggingface_hub used first
    o.cache_dir = expand_user(env("HUGGINGFACE_HUB_CACHE"));
  } else {
    o.cache_dir = hf_home / "hub";
  }

  if (std::string token = trim(env("HF_TOKEN")); !token.empty()) {
    o.token = std::move(token);
  } else {
    // Where `hf auth login` (formerly `huggingface-cli login`) stores the token.
    const fs::path token_path =
        !env("HF_TOKEN_PATH").empty() ? expand_user(env("HF_TOKEN_PATH")) : hf_home / "token";
    std::ifstream in(token_path);
    if (std::string line; in && std::getline(in, line) && !trim(line).empty())
      o.token = trim(line);
  }
  o.offline = env_is_true("HF_HUB_OFFLINE");
  o.show_progress = ::isatty(STDERR_FILENO) != 0;
  return o;
}

std::optional<HubId> parse_hub_id(const std::string& arg) {
  std::error_code ec;
  if (arg.empty() || fs::exists(arg, ec) || arg.ends_with(".gguf")) return std::nullopt;
  HubId id{arg, "main"};
  if (const size_t at = arg.find('@'); at != std::string::npos) {
    id.repo = arg.substr(0, at);
    id.revision = arg.substr(at + 1);
    if (!safe_relative_path(id.revision) ||
        id.revision.find_first_of(" :?*[~^") != std::string::npos)
      return std::nullopt;
  }
  if (!valid_repo_id(id.repo)) return std::nullopt;
  return id;
}

std::vector<std::string> files_needed_for_conversion(const std::vector<std::string>& repo_files) {
  const auto has = [&](const std::string& f) {
    return std::find(repo_files.begin(), repo_files.end(), f) != repo_files.end();
  };
  std::vector<std::string> needed;
  for (const char* f : kSmallFiles) {
    if (has(f)) needed.emplace_back(f);
  }
  // Transformers loads model.safetensors first when a repo has both, so the same weights win.
  if (has(kSingleWeights)) {
    needed.emplace_back(kSingleWeights);
  } else if (has(kWeightIndex)) {
    needed.emplace_back(kWeightIndex);
  }
  return needed;
}

fs::path resolve_snapshot(const HubId& id, const HubOptions& options) {
  if (!valid_repo_id(id.repo) || !safe_relative_path(id.revision)) {
    throw InputError(describe(id), std::nullopt, "not a valid hub repository id and revision");
  }
  const RepoCache cache(options.cache_dir, id.repo);
  if (options.offline) return resolve_offline(id, options, cache);

  Downloader downloader(id, options);
  Downloader::RepoInfo info;
  try {
    info = downloader.fetch_info();
  } catch (const http::TransportError& e) {
    // The hub is unreachable, not refusing: a complete cached snapshot is still the answer,
    // as huggingface_hub would give.
    const std::optional<fs::path> snapshot = cached_snapshot(id, cache);
    if (!snapshot || !missing_for_conversion(*snapshot).empty()) throw;
    std::cerr << "optiq: " << e.what() << "; using the cached snapshot " << snapshot->string()
              << "\n";
    return *snapshot;
  }
  return downloader.download(info);
}

fs::path resolve_model_path(const std::string& arg, const HubOptions& options) {
  std::error_code ec;
  if (fs::is_directory(arg, ec) || fs::is_regular_file(arg, ec)) return arg;
  if (const std::optional<HubId> id = parse_hub_id(arg)) return resolve_snapshot(*id, options);
  throw InputError(arg, std::nullopt,
                   "no such file or folder, and not a hub id: a model is a local model folder, a "
                   ".gguf file, or a Hugging Face repository id org/name[@revision]");
}

}  // namespace optiq::hub
