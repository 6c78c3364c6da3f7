// The hub client against a fake hub: a cpp-httplib server on 127.0.0.1 serving the model-info
// API, resolve/ URLs (with LFS files redirected to a "CDN" reached as localhost, a different
// origin) and logging every request, so tests can assert what was and was not asked for.
#include "io/hub.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <nlohmann/json.hpp>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "util/error.h"

namespace {

namespace fs = std::filesystem;
using optiq::InputError;
using optiq::RuntimeError;
using optiq::hub::HubId;
using optiq::hub::HubOptions;

constexpr const char* kCommit = "0123456789abcdef0123456789abcdef01234567";
constexpr const char* kDevCommit = "fedcba9876543210fedcba9876543210fedcba98";
constexpr const char* kToken = "hf_test_token";

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), digest, &n, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) {
    static constexpr char kHex[] = "0123456789abcdef";
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return hex;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& p, std::string_view data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Deterministic bytes, large enough that resume offsets fall mid-file.
std::string pseudo_weights(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1103515245u + 12345u;
    s[i] = static_cast<char>(seed >> 16);
  }
  return s;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "optiq-hub-test-XXXXXX").string();
    if (!mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Sets (or unsets, for nullopt) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

struct Served {
  std::string content;
  bool lfs = false;
  std::string etag() const { return lfs ? sha256_hex(content) : sha256_hex(content).substr(0, 40); }
};

struct Logged {
  std::string method, path, authorization, range, host;
};

class FakeHub {
 public:
  std::string repo = "acme/tiny";
  std::map<std::string, std::string> branches{{"main", kCommit}, {"dev", kDevCommit}};
  std::map<std::string, Served> files;
  std::optional<std::string> required_token;
  bool corrupt_lfs = false;           // the CDN flips one byte of what it sends
  bool short_regular_files = false;   // GETs of non-LFS files lose their last byte
  std::optional<size_t> drop_after;   // the CDN closes the connection after this many bytes
  bool ignore_range = false;          // the CDN answers 200 with everything, Range or not
  bool cdn_forbidden = false;         // the CDN refuses, as with an expired signed URL

  FakeHub() {
    // A proxy configured on the machine must not intercept loopback requests.
    setenv("no_proxy", "127.0.0.1,localhost", 1);
    setenv("NO_PROXY", "127.0.0.1,localhost", 1);
    // Logged before routing, not in set_logger (which runs after the reply is sent), so a
    // request is in the log by the time the client has its answer.
    server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response&) {
      std::lock_guard lock(mutex_);
      log_.push_back({req.method, req.path, req.get_header_value("Authorization"),
                      req.get_header_value("Range"), req.get_header_value("Host")});
      return httplib::Server::HandlerResponse::Unhandled;
    });
    using Handler = void (FakeHub::*)(const httplib::Request&, httplib::Response&);
    const auto route = [this](const char* pattern, Handler handler) {
      server_.Get(pattern, [this, handler](const httplib::Request& req, httplib::Response& res) {
        (this->*handler)(req, res);
      });
    };
    route(R"(/api/models/([^/]+/[^/]+)/revision/(.+))", &FakeHub::api);
    route(R"(/([^/]+/[^/]+)/resolve/([^/]+)/(.+))", &FakeHub::serve_file);
    route(R"(/cdn/([0-9a-f]+))", &FakeHub::cdn);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }

  std::vector<Logged> log() const {
    std::lock_guard lock(mutex_);
    return log_;
  }
  size_t requests_for(const std::string& path_part) const {
    size_t n = 0;
    for (const Logged& l : log()) n += l.path.find(path_part) != std::string::npos;
    return n;
  }

 private:
  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (!required_token || req.get_header_value("Authorization") == "Bearer " + *required_token)
      return true;
    res.status = 401;
    res.set_header("X-Error-Code", "GatedRepo");
    res.set_header("X-Error-Message", "Access to model " + repo + " is restricted.");
    return false;
  }

  // Commit a revision names, or "" (after answering 404) when the repo or revision is unknown.
  std::string commit_for(const std::string& repo_id, const std::string& revision,
                         httplib::Response& res) {
    if (repo_id != repo) {
      res.status = 404;
      res.set_header("X-Error-Code", "RepoNotFound");
      return "";
    }
    if (const auto it = branches.find(revision); it != branches.end()) return it->second;
    for (const auto& [branch, commit] : branches) {
      if (commit == revision) return commit;
    }
    res.status = 404;
    res.set_header("X-Error-Code", "RevisionNotFound");
    return "";
  }

  void api(const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    const std::string commit = commit_for(req.matches[1], req.matches[2], res);
    if (commit.empty()) return;
    nlohmann::json info = {{"id", repo}, {"sha", commit}, {"siblings", nlohmann::json::array()}};
    for (const auto& [name, file] : files) info["siblings"].push_back({{"rfilename", name}});
    res.set_content(info.dump(), "application/json");
  }

  void serve_file(const httplib::Request& req, httplib::Response& res) {
    if (!authorized(req, res)) return;
    const std::string commit = commit_for(req.matches[1], req.matches[2], res);
    if (commit.empty()) return;
    const auto it = files.find(req.matches[3]);
    if (it == files.end()) {
      res.status = 404;
      res.set_header("X-Error-Code", "EntryNotFound");
      return;
    }
    const Served& file = it->second;
    res.set_header("X-Repo-Commit", commit);
    if (file.lfs) {
      // As the hub does: the git-level ETag differs from the LFS one, which clients must prefer.
      res.status = 302;
      res.set_header("ETag", "\"" + sha256_hex("pointer " + file.content).substr(0, 40) + "\"");
      res.set_header("X-Linked-Etag", "\"" + file.etag() + "\"");
      res.set_header("X-Linked-Size", std::to_string(file.content.size()));
      res.set_header("Location",
                     "http://localhost:" + std::to_string(port_) + "/cdn/" + file.etag());
      return;
    }
    res.set_header("ETag", "\"" + file.etag() + "\"");
    std::string body = file.content;
    if (short_regular_files && req.method == "GET") body.pop_back();
    res.set_content(body, "application/octet-stream");
  }

  void cdn(const httplib::Request& req, httplib::Response& res) {
    if (cdn_forbidden) {
      res.status = 403;
      return;
    }
    for (const auto& [name, file] : files) {
      if (!file.lfs || file.etag() != req.matches[1]) continue;
      std::string body = file.content;
      if (corrupt_lfs) body[body.size() / 2] ^= 0x5a;
      if (ignore_range) {
        // Chunked, because cpp-httplib would cut a sized body to the Range by itself, and an
        // explicit 200 since it answers 206 to any request with a Range.
        res.status = 200;
        res.set_chunked_content_provider("application/octet-stream",
                                         [body](size_t offset, httplib::DataSink& sink) {
                                           if (offset < body.size()) {
                                             sink.write(body.data() + offset, body.size() - offset);
                                           } else {
                                             sink.done();
                                           }
                                           return true;
                                         });
      } else if (drop_after) {
        const size_t cut = *drop_after;
        res.set_content_provider(body.size(), "application/octet-stream",
                                 [body, cut](size_t offset, size_t, httplib::DataSink& sink) {
                                   if (offset >= cut) return false;  // drop the connection
                                   return sink.write(body.data() + offset, cut - offset);
                                 });
      } else {
        res.set_content(body, "application/octet-stream");
      }
      return;
    }
    res.status = 404;
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  mutable std::mutex mutex_;
  std::vector<Logged> log_;
};

HubOptions options_for(const std::string& endpoint, const fs::path& cache) {
  HubOptions o;
  o.endpoint = endpoint;
  o.cache_dir = cache;
  o.show_progress = false;
  return o;
}

// A small model repo: config (git file), LFS weights, plus files a conversion must not fetch.
void add_single_file_model(FakeHub& hub) {
  hub.files["config.json"] = {"{\"model_type\":\"llama\"}", false};
  hub.files["tokenizer.json"] = {"{\"model\":{}}", false};
  hub.files["model.safetensors"] = {pseudo_weights(300000, 1), true};
  hub.files["README.md"] = {"# tiny\n", false};
  hub.files["pytorch_model.bin"] = {pseudo_weights(1000, 2), true};
}

fs::path repo_cache(const fs::path& cache) { return cache / "models--acme--tiny"; }

fs::path resolve(const HubOptions& o, const std::string& revision = "main") {
  return optiq::hub::resolve_snapshot({"acme/tiny", revision}, o);
}

// The message of the RuntimeError that resolving {repo}@{revision} throws.
std::string resolve_error(const HubOptions& o, const std::string& revision = "main",
                          const std::string& repo = "acme/tiny") {
  try {
    optiq::hub::resolve_snapshot({repo, revision}, o);
  } catch (const RuntimeError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a RuntimeError";
  return "";
}

TEST(HubId, ParsesRepoAndRevision) {
  const auto plain = optiq::hub::parse_hub_id("Qwen/Qwen2.5-0.5B-Instruct");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->repo, "Qwen/Qwen2.5-0.5B-Instruct");
  EXPECT_EQ(plain->revision, "main");
  const auto pr = optiq::hub::parse_hub_id("org/name@refs/pr/1");
  ASSERT_TRUE(pr);
  EXPECT_EQ(pr->repo, "org/name");
  EXPECT_EQ(pr->revision, "refs/pr/1");
  EXPECT_EQ(optiq::hub::parse_hub_id(std::string("org/name@") + kCommit)->revision, kCommit);

  for (const char* bad : {"", "name", "a/b/c", "./a/b", "/abs/path", "org/na--me", "org/name@",
                          "org/name@../x", "org/.name", "org/name-", "dir/model.gguf"}) {
    EXPECT_FALSE(optiq::hub::parse_hub_id(bad)) << bad;
  }
}

TEST(HubId, ExistingLocalPathIsNotAHubId) {
  TempDir dir;
  fs::create_directories(dir.path() / "org" / "name");
  const fs::path old = fs::current_path();
  fs::current_path(dir.path());
  const bool parsed = optiq::hub::parse_hub_id("org/name").has_value();
  fs::current_path(old);
  EXPECT_FALSE(parsed);
}

TEST(HubOptions, ReadsHuggingfaceEnvironment) {
  TempDir dir;
  write_file(dir.path() / "home" / "token", "hf_from_file\n");
  ScopedEnv home("HF_HOME", (dir.path() / "home").string());
  ScopedEnv cache("HF_HUB_CACHE", std::nullopt);
  ScopedEnv legacy("HUGGINGFACE_HUB_CACHE", std::nullopt);
  ScopedEnv token("HF_TOKEN", std::nullopt);
  ScopedEnv token_path("HF_TOKEN_PATH", std::nullopt);
  ScopedEnv endpoint("HF_ENDPOINT", "http://mirror.example/hf//");
  ScopedEnv offline("HF_HUB_OFFLINE", "yes");

  HubOptions o = HubOptions::from_environment();
  EXPECT_EQ(o.cache_dir, dir.path() / "home" / "hub");
  EXPECT_EQ(o.endpoint, "http://mirror.example/hf");
  EXPECT_EQ(o.token, "hf_from_file");
  EXPECT_TRUE(o.offline);

  ScopedEnv cache2("HF_HUB_CACHE", (dir.path() / "elsewhere").string());
  ScopedEnv token2("HF_TOKEN", "hf_from_env");
  ScopedEnv offline2("HF_HUB_OFFLINE", "0");
  ScopedEnv endpoint2("HF_ENDPOINT", std::nullopt);
  o = HubOptions::from_environment();
  EXPECT_EQ(o.cache_dir, dir.path() / "elsewhere");
  EXPECT_EQ(o.endpoint, "https://huggingface.co");
  EXPECT_EQ(o.token, "hf_from_env");
  EXPECT_FALSE(o.offline);
}

TEST(HubFiles, SelectsOnlyWhatAConversionNeeds) {
  using optiq::hub::files_needed_for_conversion;
  EXPECT_EQ(files_needed_for_conversion({"README.md", "model.safetensors", "pytorch_model.bin",
                                         "tokenizer.model", "config.json", ".gitattributes",
                                         "model.safetensors.index.json", "onnx/model.onnx"}),
            (std::vector<std::string>{"config.json", "tokenizer.model", "model.safetensors"}));
  EXPECT_EQ(files_needed_for_conversion({"model-00001-of-00002.safetensors", "config.json",
                                         "model.safetensors.index.json", "merges.txt",
                                         "vocab.json"}),
            (std::vector<std::string>{"config.json", "vocab.json", "merges.txt",
                                      "model.safetensors.index.json"}));
}

TEST(HubDownload, ResolvesBranchesToCommitsAndWritesRefs) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  const HubOptions o = options_for(hub.endpoint(), cache.path());

  EXPECT_EQ(resolve(o), repo_cache(cache.path()) / "snapshots" / kCommit);
  EXPECT_EQ(read_file(repo_cache(cache.path()) / "refs" / "main"), kCommit);

  EXPECT_EQ(resolve(o, "dev"), repo_cache(cache.path()) / "snapshots" / kDevCommit);
  EXPECT_EQ(read_file(repo_cache(cache.path()) / "refs" / "dev"), kDevCommit);
  // Downloads address the commit, so files of one snapshot come from one commit.
  EXPECT_GT(hub.requests_for(std::string("/resolve/") + kDevCommit + "/config.json"), 0u);
  EXPECT_EQ(hub.requests_for("/resolve/dev/"), 0u);

  // A commit is its own name: no ref is written for it.
  resolve(o, kCommit);
  EXPECT_FALSE(fs::exists(repo_cache(cache.path()) / "refs" / kCommit));
}

TEST(HubDownload, StoresBlobsByEtagBehindRelativeSymlinks) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  const fs::path snapshot = resolve(options_for(hub.endpoint(), cache.path()));

  for (const char* name : {"config.json", "tokenizer.json", "model.safetensors"}) {
    const Served& served = hub.files[name];
    const fs::path link = snapshot / name;
    ASSERT_TRUE(fs::is_symlink(link)) << name;
    EXPECT_EQ(fs::read_symlink(link), fs::path("../../blobs") / served.etag()) << name;
    EXPECT_EQ(read_file(link), served.content) << name;
    EXPECT_TRUE(fs::is_regular_file(repo_cache(cache.path()) / "blobs" / served.etag())) << name;
  }
  // Files a conversion does not read are neither fetched nor linked.
  EXPECT_EQ(hub.requests_for("README.md"), 0u);
  EXPECT_EQ(hub.requests_for("pytorch_model.bin"), 0u);
  EXPECT_EQ(hub.requests_for("/cdn/" + hub.files["pytorch_model.bin"].etag()), 0u);
  EXPECT_FALSE(fs::exists(snapshot / "README.md"));
}

TEST(HubDownload, ShowsProgressOnStderrWhenAsked) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  HubOptions o = options_for(hub.endpoint(), cache.path());
  o.show_progress = true;
  testing::internal::CaptureStderr();
  resolve(o);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("model.safetensors: 0.3/0.3 MB"), std::string::npos) << err;
  EXPECT_NE(err.find("MB/s  ETA 0:00"), std::string::npos) << err;
}

TEST(HubDownload, FetchesTheShardsAnIndexNamesIncludingSubfolders) {
  FakeHub hub;
  hub.files["config.json"] = {"{}", false};
  hub.files["model-00001-of-00002.safetensors"] = {pseudo_weights(5000, 3), true};
  hub.files["parts/model-00002-of-00002.safetensors"] = {pseudo_weights(6000, 4), true};
  hub.files["model-unused.safetensors"] = {pseudo_weights(100, 5), true};
  hub.files["model.safetensors.index.json"] = {
      R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
      R"("b":"parts/model-00002-of-00002.safetensors","c":"model-00001-of-00002.safetensors"}})",
      false};
  TempDir cache;
  const fs::path snapshot = resolve(options_for(hub.endpoint(), cache.path()));

  EXPECT_EQ(read_file(snapshot / "model-00001-of-00002.safetensors"),
            hub.files["model-00001-of-00002.safetensors"].content);
  const Served& second = hub.files["parts/model-00002-of-00002.safetensors"];
  const fs::path nested = snapshot / "parts" / "model-00002-of-00002.safetensors";
  EXPECT_EQ(fs::read_symlink(nested), fs::path("../../../blobs") / second.etag());
  EXPECT_EQ(read_file(nested), second.content);
  EXPECT_EQ(hub.requests_for("model-unused"), 0u);
}

TEST(HubDownload, RepoWithoutSafetensorsIsAnInputError) {
  FakeHub hub;
  hub.files["config.json"] = {"{}", false};
  hub.files["pytorch_model.bin"] = {"weights", true};
  TempDir cache;
  EXPECT_THROW(resolve(options_for(hub.endpoint(), cache.path())), InputError);
  EXPECT_EQ(hub.requests_for("/resolve/"), 0u);
}

TEST(HubAuth, LfsRedirectToAnotherHostGetsNoToken) {
  FakeHub hub;
  add_single_file_model(hub);
  hub.required_token = kToken;
  TempDir cache;
  HubOptions o = options_for(hub.endpoint(), cache.path());
  o.token = kToken;
  resolve(o);

  size_t cdn = 0;
  for (const Logged& l : hub.log()) {
    if (l.path.starts_with("/cdn/")) {
      ++cdn;
      EXPECT_EQ(l.host, "localhost:" + std::to_string(hub.port()));
      EXPECT_EQ(l.authorization, "") << "token leaked to " << l.host << l.path;
    } else {
      EXPECT_EQ(l.authorization, std::string("Bearer ") + kToken) << l.path;
    }
  }
  EXPECT_EQ(cdn, 1u);
}

TEST(HubAuth, GatedRepoNeedsHfToken) {
  FakeHub hub;
  add_single_file_model(hub);
  hub.required_token = kToken;
  TempDir cache;
  HubOptions o = options_for(hub.endpoint(), cache.path());

  const std::string anonymous = resolve_error(o);
  EXPECT_NE(anonymous.find("gated"), std::string::npos) << anonymous;
  EXPECT_NE(anonymous.find("set HF_TOKEN"), std::string::npos) << anonymous;
  EXPECT_NE(anonymous.find("acme/tiny"), std::string::npos) << anonymous;

  o.token = "hf_wrong";
  const std::string wrong = resolve_error(o);
  EXPECT_NE(wrong.find("HF_TOKEN cannot read it"), std::string::npos) << wrong;

  o.token = kToken;
  const fs::path snapshot = resolve(o);
  EXPECT_EQ(read_file(snapshot / "config.json"), hub.files["config.json"].content);
  EXPECT_EQ(hub.log()[2].authorization, std::string("Bearer ") + kToken) << hub.log()[2].path;
}

TEST(HubErrors, NotFoundNamesRepoAndRevision) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  const HubOptions o = options_for(hub.endpoint(), cache.path());

  const std::string repo = resolve_error(o, "main", "acme/missing");
  EXPECT_NE(repo.find("acme/missing@main"), std::string::npos) << repo;
  EXPECT_NE(repo.find("not found"), std::string::npos) << repo;

  const std::string rev = resolve_error(o, "v9");
  EXPECT_NE(rev.find("acme/tiny@v9"), std::string::npos) << rev;
  EXPECT_FALSE(fs::exists(repo_cache(cache.path()) / "refs"));
}

TEST(HubErrors, StorageHostRefusalIsNotBlamedOnTheToken) {
  FakeHub hub;
  add_single_file_model(hub);
  hub.cdn_forbidden = true;
  TempDir cache;
  const std::string error = resolve_error(options_for(hub.endpoint(), cache.path()));
  EXPECT_NE(error.find("HTTP 403"), std::string::npos) << error;
  EXPECT_NE(error.find("/cdn/"), std::string::npos) << error;
  EXPECT_EQ(error.find("HF_TOKEN"), std::string::npos) << error;
  const std::string etag = hub.files["model.safetensors"].etag();
  EXPECT_FALSE(fs::exists(repo_cache(cache.path()) / "blobs" / (etag + ".incomplete")));
}

TEST(HubOffline, WarmCacheIsUsedWithoutAnyRequest) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  HubOptions o = options_for(hub.endpoint(), cache.path());
  const fs::path online = resolve(o);
  const size_t requests = hub.log().size();

  o.offline = true;
  EXPECT_EQ(resolve(o), online);
  EXPECT_EQ(resolve(o, kCommit), online);
  EXPECT_EQ(hub.log().size(), requests);
}

TEST(HubOffline, ColdOrIncompleteCacheFailsClearly) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  HubOptions o = options_for(hub.endpoint(), cache.path());
  o.offline = true;

  const std::string cold = resolve_error(o);
  EXPECT_NE(cold.find("acme/tiny@main"), std::string::npos) << cold;
  EXPECT_NE(cold.find("HF_HUB_OFFLINE=1 forbids downloading"), std::string::npos) << cold;

  // A snapshot with a config but no weights (e.g. another tool fetched only the config).
  write_file(repo_cache(cache.path()) / "refs" / "main", kCommit);
  write_file(repo_cache(cache.path()) / "snapshots" / kCommit / "config.json", "{}");
  const std::string partial = resolve_error(o);
  EXPECT_NE(partial.find("lacks model.safetensors"), std::string::npos) << partial;
  EXPECT_NE(partial.find("HF_HUB_OFFLINE=1"), std::string::npos) << partial;
  EXPECT_TRUE(hub.log().empty());
}

TEST(HubResume, PartialBlobIsResumedWithARangeRequest) {
  FakeHub hub;
  add_single_file_model(hub);
  const Served& weights = hub.files["model.safetensors"];
  TempDir cache;
  const fs::path blobs = repo_cache(cache.path()) / "blobs";
  constexpr size_t kHave = 123457;
  write_file(blobs / (weights.etag() + ".incomplete"), weights.content.substr(0, kHave));

  resolve(options_for(hub.endpoint(), cache.path()));
  size_t ranged = 0;
  for (const Logged& l : hub.log()) {
    if (l.path.starts_with("/cdn/")) {
      ++ranged;
      EXPECT_EQ(l.range, "bytes=" + std::to_string(kHave) + "-");
    }
  }
  EXPECT_EQ(ranged, 1u);
  EXPECT_EQ(sha256_hex(read_file(blobs / weights.etag())), weights.etag());
  EXPECT_FALSE(fs::exists(blobs / (weights.etag() + ".incomplete")));
}

TEST(HubResume, BrokenTransferKeepsItsBytesForTheNextRun) {
  FakeHub hub;
  add_single_file_model(hub);
  const Served& weights = hub.files["model.safetensors"];
  constexpr size_t kCut = 100000;
  hub.drop_after = kCut;
  TempDir cache;
  const HubOptions o = options_for(hub.endpoint(), cache.path());
  const fs::path blobs = repo_cache(cache.path()) / "blobs";

  const std::string broken = resolve_error(o);
  EXPECT_NE(broken.find("resumes"), std::string::npos) << broken;
  EXPECT_EQ(read_file(blobs / (weights.etag() + ".incomplete")), weights.content.substr(0, kCut));
  EXPECT_FALSE(fs::exists(blobs / weights.etag()));
  EXPECT_FALSE(fs::exists(repo_cache(cache.path()) / "refs" / "main"));

  hub.drop_after.reset();
  const fs::path snapshot = resolve(o);
  EXPECT_EQ(hub.log().back().range, "bytes=" + std::to_string(kCut) + "-");
  EXPECT_EQ(read_file(snapshot / "model.safetensors"), weights.content);
}

TEST(HubResume, ServerIgnoringTheRangeRestartsTheFile) {
  FakeHub hub;
  add_single_file_model(hub);
  hub.ignore_range = true;
  const Served& weights = hub.files["model.safetensors"];
  TempDir cache;
  const fs::path blobs = repo_cache(cache.path()) / "blobs";
  write_file(blobs / (weights.etag() + ".incomplete"), weights.content.substr(0, 5000));

  const fs::path snapshot = resolve(options_for(hub.endpoint(), cache.path()));
  EXPECT_EQ(hub.log().back().range, "bytes=5000-");
  EXPECT_EQ(read_file(snapshot / "model.safetensors"), weights.content);
}

TEST(HubVerify, Sha256MismatchLeavesNoBlob) {
  FakeHub hub;
  add_single_file_model(hub);
  hub.corrupt_lfs = true;
  TempDir cache;
  const std::string etag = hub.files["model.safetensors"].etag();

  const std::string error = resolve_error(options_for(hub.endpoint(), cache.path()));
  EXPECT_NE(error.find("sha256"), std::string::npos) << error;
  const fs::path blobs = repo_cache(cache.path()) / "blobs";
  EXPECT_FALSE(fs::exists(blobs / etag));
  EXPECT_FALSE(fs::exists(blobs / (etag + ".incomplete")));
  EXPECT_FALSE(fs::exists(repo_cache(cache.path()) / "snapshots" / kCommit / "model.safetensors"));
}

TEST(HubVerify, SizeMismatchOfARegularFileLeavesNoBlob) {
  FakeHub hub;
  add_single_file_model(hub);
  hub.short_regular_files = true;
  TempDir cache;
  const std::string error = resolve_error(options_for(hub.endpoint(), cache.path()));
  EXPECT_NE(error.find("config.json"), std::string::npos) << error;
  EXPECT_NE(error.find("size"), std::string::npos) << error;
  EXPECT_TRUE(fs::is_empty(repo_cache(cache.path()) / "blobs"));
}

// Builds, by hand, what huggingface_hub leaves after downloading the model: blobs named by etag,
// refs/main, and relative symlinks in the snapshot.
void fill_cache_like_huggingface_hub(const fs::path& cache, FakeHub& hub) {
  const fs::path repo = repo_cache(cache);
  write_file(repo / "refs" / "main", kCommit);
  for (const char* name : {"config.json", "tokenizer.json", "model.safetensors"}) {
    const Served& file = hub.files[name];
    write_file(repo / "blobs" / file.etag(), file.content);
    fs::create_directories(repo / "snapshots" / kCommit);
    fs::create_symlink(fs::path("../../blobs") / file.etag(), repo / "snapshots" / kCommit / name);
  }
}

TEST(HubCache, ReusesACacheThatHuggingfaceHubFilled) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  fill_cache_like_huggingface_hub(cache.path(), hub);
  HubOptions o = options_for(hub.endpoint(), cache.path());
  const fs::path expected = repo_cache(cache.path()) / "snapshots" / kCommit;

  o.offline = true;
  EXPECT_EQ(resolve(o), expected);
  EXPECT_TRUE(hub.log().empty());

  // Online, only the listing is asked for: every needed file is already in the snapshot.
  o.offline = false;
  EXPECT_EQ(resolve(o), expected);
  ASSERT_EQ(hub.log().size(), 1u);
  EXPECT_TRUE(hub.log()[0].path.starts_with("/api/models/acme/tiny/revision/main"));
}

TEST(HubCache, BlobOfAnotherCommitIsLinkedNotDownloaded) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  fill_cache_like_huggingface_hub(cache.path(), hub);
  // A new commit on main with the same weights.
  hub.branches["main"] = kDevCommit;

  const fs::path snapshot = resolve(options_for(hub.endpoint(), cache.path()));
  EXPECT_EQ(snapshot, repo_cache(cache.path()) / "snapshots" / kDevCommit);
  EXPECT_EQ(read_file(repo_cache(cache.path()) / "refs" / "main"), kDevCommit);
  EXPECT_EQ(read_file(snapshot / "model.safetensors"), hub.files["model.safetensors"].content);
  for (const Logged& l : hub.log()) {
    EXPECT_TRUE(l.method == "HEAD" || l.path.starts_with("/api/")) << l.method << " " << l.path;
  }
}

TEST(HubCache, UnreachableHubFallsBackToACompleteCachedSnapshot) {
  std::string dead_endpoint;
  {
    FakeHub gone;
    dead_endpoint = gone.endpoint();
  }
  FakeHub hub;
  add_single_file_model(hub);
  TempDir warm;
  fill_cache_like_huggingface_hub(warm.path(), hub);
  EXPECT_EQ(resolve(options_for(dead_endpoint, warm.path())),
            repo_cache(warm.path()) / "snapshots" / kCommit);

  TempDir cold;
  const std::string error = resolve_error(options_for(dead_endpoint, cold.path()));
  EXPECT_NE(error.find(dead_endpoint), std::string::npos) << error;
}

TEST(HubModelPath, LocalPathsPassAndNonsenseIsAnInputError) {
  TempDir dir;
  write_file(dir.path() / "model.gguf", "GGUF");
  const HubOptions o = options_for("http://127.0.0.1:9", dir.path() / "cache");
  EXPECT_EQ(optiq::hub::resolve_model_path(dir.path().string(), o), dir.path());
  EXPECT_EQ(optiq::hub::resolve_model_path((dir.path() / "model.gguf").string(), o),
            dir.path() / "model.gguf");
  EXPECT_THROW(optiq::hub::resolve_model_path((dir.path() / "absent.gguf").string(), o),
               InputError);
  EXPECT_THROW(optiq::hub::resolve_model_path("not a model", o), InputError);
}

TEST(HubModelPath, HubIdIsResolvedThroughTheCache) {
  FakeHub hub;
  add_single_file_model(hub);
  TempDir cache;
  const HubOptions o = options_for(hub.endpoint(), cache.path());
  EXPECT_EQ(optiq::hub::resolve_model_path("acme/tiny@dev", o),
            repo_cache(cache.path()) / "snapshots" / kDevCommit);
}

}  // namespace
