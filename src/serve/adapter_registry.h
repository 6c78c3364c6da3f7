// The LoRA adapters mounted on the server's model: loaded at start (--lora NAME=PATH[:SCALE]) or
// at run time (POST /lora-adapters), listed (GET) and unloaded (DELETE /lora-adapters/NAME). A
// request picks any of them (generation_request.h, AdapterUse); it holds a shared pointer, so an
// adapter unloaded while requests use it lives until the last of them ends. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/low_rank.h"
#include "engine/model.h"
#include "lora/adapter.h"
#include "serve/request_fields.h"

namespace optiq::serve {

struct MountedAdapter {
  int id = 0;          // llama-server's "id": the order of mounting, never reused
  std::string name;    // what a request names it by ("model": "BASE+NAME")
  std::string path;    // the file or folder it was read from
  float scale = 1.0f;  // the scale a request that names it without one gets
  lora::Adapter adapter;
  std::vector<engine::LowRankDelta> deltas;  // resolved at scale 1 (a request multiplies its own in)
};

class AdapterRegistry {
 public:
  explicit AdapterRegistry(const engine::Model& model) : model_(model) {}

  // Reads and checks the adapter (InputError as lora::load_adapter); ApiError 409 when the name is
  // taken, 400 for an empty name or one with '+' or '/'.
  std::shared_ptr<const MountedAdapter> load(const std::string& name, const std::string& path, float scale);
  // False when no adapter has that name.
  bool unload(const std::string& name);
  std::shared_ptr<const MountedAdapter> find_name(const std::string& name) const;
  std::shared_ptr<const MountedAdapter> find_id(int64_t id) const;
  std::vector<std::shared_ptr<const MountedAdapter>> list() const;  // by id
  uint64_t bytes() const;  // factors of every mounted adapter

 private:
  const engine::Model& model_;
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<const MountedAdapter>> mounted_;  // by id
  int next_id_ = 0;
};

// One adapter a request runs with, at its scale.
struct AdapterUse {
  std::shared_ptr<const MountedAdapter> adapter;
  float scale = 1.0f;
};

// The adapters a request asks for: llama-server's "lora": [{"id": I, "scale": S}] (scale
// optional: the adapter's own) and the names after '+' in "model" ("BASE+NAME", for clients that
// can only set a model name), in that order. ApiError 400 for a malformed "lora" or an unknown
// id, 404 for an unknown name.
std::vector<AdapterUse> request_adapters(const Json& body, const AdapterRegistry& registry);

}  // namespace optiq::serve
