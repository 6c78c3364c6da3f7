#include "serve/adapter_registry.h"

#include <malloc.h>

#include <algorithm>

#include "serve/api_errors.h"
#include "serve/request_fields.h"

namespace optiq::serve {

std::shared_ptr<const MountedAdapter> AdapterRegistry::load(const std::string& name, const std::string& path, float scale) {
  if (name.empty() || name.find_first_of("+/") != std::string::npos)
    throw ApiError(400, "adapter name '" + name + "' must be non-empty, without '+' or '/'", "name");
  if (find_name(name)) throw ApiError(409, "an adapter named '" + name + "' is already loaded", "name");
  auto m = std::make_shared<MountedAdapter>();
  m->name = name;
  m->path = path;
  m->scale = scale;
  m->adapter = lora::load_adapter(path, model_);  // outside the lock: reading takes a while
  m->deltas = lora::resolve(m->adapter, model_, 1.0f);
  m->adapter.drop_f32();  // the server only runs it: the engine's f16 factors are enough
  malloc_trim(0);         // and the freed f32 copies (small blocks, kept by malloc) go back
  std::lock_guard lock(mutex_);
  if (std::any_of(mounted_.begin(), mounted_.end(), [&](const auto& a) { return a->name == name; }))
    throw ApiError(409, "an adapter named '" + name + "' is already loaded", "name");
  m->id = next_id_++;
  mounted_.push_back(m);
  return m;
}

bool AdapterRegistry::unload(const std::string& name) {
  std::lock_guard lock(mutex_);
  return std::erase_if(mounted_, [&](const auto& a) { return a->name == name; }) > 0;
}

std::shared_ptr<const MountedAdapter> AdapterRegistry::find_name(const std::string& name) const {
  std::lock_guard lock(mutex_);
  for (const auto& a : mounted_)
    if (a->name == name) return a;
  return nullptr;
}

std::shared_ptr<const MountedAdapter> AdapterRegistry::find_id(int64_t id) const {
  std::lock_guard lock(mutex_);
  for (const auto& a : mounted_)
    if (a->id == id) return a;
  return nullptr;
}

std::vector<std::shared_ptr<const MountedAdapter>> AdapterRegistry::list() const {
  std::lock_guard lock(mutex_);
  return mounted_;
}

uint64_t AdapterRegistry::bytes() const {
  std::lock_guard lock(mutex_);
  uint64_t n = 0;
  for (const auto& a : mounted_) n += a->adapter.bytes();
  return n;
}

std::vector<AdapterUse> request_adapters(const Json& body, const AdapterRegistry& registry) {
  std::vector<AdapterUse> out;
  if (const auto it = body.find("lora"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) throw ApiError(400, "'lora' must be a list of {\"id\", \"scale\"} objects", "lora");
    for (const Json& item : *it) {
      const auto id = item.is_object() ? item.find("id") : item.end();
      if (!item.is_object() || id == item.end() || !id->is_number_integer())
        throw ApiError(400, "every 'lora' entry needs an integer 'id'", "lora");
      std::shared_ptr<const MountedAdapter> adapter = registry.find_id(id->get<int64_t>());
      if (!adapter) throw ApiError(400, "no LoRA adapter has id " + id->dump() + " (GET /lora-adapters lists them)", "lora");
      const std::optional<double> scale = number_field(item, "scale", -1e6, 1e6);
      out.push_back({adapter, scale ? static_cast<float>(*scale) : adapter->scale});
    }
  }
  const std::optional<std::string> model = string_field(body, "model");
  for (size_t at = model ? model->find('+') : std::string::npos; at != std::string::npos;) {
    const size_t next = model->find('+', at + 1);
    const std::string name = model->substr(at + 1, next == std::string::npos ? std::string::npos : next - at - 1);
    std::shared_ptr<const MountedAdapter> adapter = registry.find_name(name);
    if (!adapter)
      throw ApiError(404, "The model '" + *model + "' does not exist: no LoRA adapter is named '" + name + "'", "model",
                     "model_not_found");
    out.push_back({adapter, adapter->scale});
    at = next;
  }
  return out;
}

}  // namespace optiq::serve
