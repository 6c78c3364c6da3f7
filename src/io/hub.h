// Hugging Face hub: resolve a model argument to local files, through the standard
// huggingface_hub cache layout so a cache filled by Python tools is reused as it is, and what
// optiq downloads is reused by them:
//   $HF_HUB_CACHE (default $HF_HOME/hub, default ~/.cache/huggingface/hub)
//     models--{org}--{name}/
//       blobs/{etag}                  file contents, named by their (unquoted) etag
//       refs/{revision}               text file holding the commit sha a branch/tag points at
//       snapshots/{commit}/{filename} relative symlink to ../../blobs/{etag}
//     .locks/models--{org}--{name}/{etag}.lock  flock held while that blob downloads
// Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (sent as a Bearer token,
// only to the endpoint's own origin), HF_HUB_OFFLINE=1 (never touch the network; use the cache
// or fail clearly).
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace optiq::hub {

struct HubId {
  std::string repo;      // "org/name"
  std::string revision;  // branch, tag or commit sha; "main" when not given
};

// Parses "org/name" or "org/name@revision". Returns nullopt if `arg` does not look like a hub
// id (e.g. it is an existing local path, ends in .gguf, or has not exactly one '/' before '@').
// Repo names follow the hub's rules (word characters, '-', '.'; no "--" or ".."; <= 96 chars).
std::optional<HubId> parse_hub_id(const std::string& arg);

struct HubOptions {
  std::string endpoint;              // from HF_ENDPOINT, trailing '/' removed
  std::optional<std::string> token;  // from HF_TOKEN, else the file `hf auth login` writes
                                     // ($HF_TOKEN_PATH, default $HF_HOME/token)
  bool offline = false;              // from HF_HUB_OFFLINE (1/true/yes/on, any case)
  std::filesystem::path cache_dir;   // from HF_HUB_CACHE (or HUGGINGFACE_HUB_CACHE) / HF_HOME
  bool show_progress = true;         // progress bar on stderr for downloads (bytes, MB/s, ETA)
  // Reads the variables above; show_progress only when stderr is a terminal, so logs stay clean.
  static HubOptions from_environment();
};

// Which repository files a conversion needs: config, tokenizer files, weights. Given the repo's
// file list, returns the subset to download (config.json, generation_config.json,
// tokenizer.json, tokenizer_config.json, tokenizer.model, vocab.json, merges.txt,
// added_tokens.json, special_tokens_map.json, chat_template.jinja, and model.safetensors or,
// failing that, model.safetensors.index.json). The shards an index names are only known once it
// is downloaded; resolve_snapshot fetches them then.
std::vector<std::string> files_needed_for_conversion(const std::vector<std::string>& repo_files);

// Makes the files a conversion needs available locally and returns the snapshot directory
// (snapshots/{commit}) that holds them. Online: resolves the revision to a commit, lists the
// repo's files, downloads missing ones (resuming a partial `blobs/{etag}.incomplete`, verifying
// size and, for LFS files, the sha256 given as etag), writes refs/ and the snapshot symlinks.
// Offline: uses refs/{revision} (or the revision itself if it is a commit sha) and requires the
// snapshot to hold config.json and weights; otherwise throws RuntimeError saying what is
// missing and that HF_HUB_OFFLINE=1 forbids downloading.
// Online but the hub unreachable: a complete cached snapshot of the revision is used (with a
// note on stderr), otherwise the connection error is thrown.
// HTTP 401/403 -> RuntimeError mentioning HF_TOKEN; 404 -> RuntimeError naming repo/revision.
// A repo without safetensors weights -> InputError. Downloaded data failing its size or sha256
// check -> RuntimeError, and nothing is left in blobs/.
std::filesystem::path resolve_snapshot(const HubId& id, const HubOptions& options);

// The single entry point the CLI uses: a local directory or file is returned as is; a hub id
// is resolved with resolve_snapshot; anything else throws InputError explaining what a model
// argument may be.
std::filesystem::path resolve_model_path(const std::string& arg, const HubOptions& options);

}  // namespace optiq::hub
