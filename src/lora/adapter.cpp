#include "lora/adapter.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "lora/gguf_lora.h"
#include "lora/peft.h"
#include "quant/float16.h"
#include "util/error.h"

namespace optiq::lora {
namespace {

// The weights an adapter may target: the projections of every block, by GGUF name.
std::map<std::string, const engine::Weight*, std::less<>> adaptable_weights(const engine::Model& model) {
  std::map<std::string, const engine::Weight*, std::less<>> out;
  for (const engine::Layer& L : model.layers)
    for (const engine::Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down})
      out.emplace(w->name, w);
  return out;
}

bool all_finite(const std::vector<float>& v) {
  for (const float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

// Every matrix targets a distinct projection of `model` with its shape, a positive rank and
// finite values.
void check_against(const Adapter& adapter, const engine::Model& model) {
  const std::string base_arch(arch_gguf_name(model.hp.arch));
  if (adapter.architecture != base_arch)
    throw InputError(adapter.path, std::nullopt,
                     "the adapter was made for a " + adapter.architecture + " model; the base is " + base_arch);
  if (adapter.matrices.empty()) throw InputError(adapter.path, std::nullopt, "the adapter holds no LoRA tensors");
  const auto weights = adaptable_weights(model);
  std::set<std::string> seen;
  for (const LoraMatrix& m : adapter.matrices) {
    const auto fail = [&](const std::string& why) { throw InputError(adapter.path, std::nullopt, m.target + ": " + why); };
    const auto it = weights.find(m.target);
    if (it == weights.end())
      fail(model.hp.n_layer > 0 && m.target.starts_with("blk.")
               ? "the base has no such projection (it has " + std::to_string(model.hp.n_layer) + " blocks)"
               : "not a block projection (q/k/v/o, gate/up/down) the engine can adapt");
    if (!seen.insert(m.target).second) fail("adapted twice");
    const engine::Weight& w = *it->second;
    if (m.rank <= 0 || m.rank > engine::kMaxLowRank)
      fail("rank " + std::to_string(m.rank) + " (the engine applies ranks 1 to " + std::to_string(engine::kMaxLowRank) + ")");
    if (m.n_in != w.n_in || m.n_out != w.n_out)
      fail("the adapter is " + std::to_string(m.n_out) + " x " + std::to_string(m.n_in) + " (out x in), the base weight " +
           std::to_string(w.n_out) + " x " + std::to_string(w.n_in));
    if (m.a.size() != static_cast<size_t>(m.rank * m.n_in) || m.b_t.size() != static_cast<size_t>(m.n_out * m.rank))
      fail("factor sizes do not match rank " + std::to_string(m.rank));
    if (!all_finite(m.a) || !all_finite(m.b_t) || !std::isfinite(m.scale)) fail("holds NaN or Inf values");
  }
}

}  // namespace

void make_f16_factors(Adapter& adapter) {
  for (LoraMatrix& m : adapter.matrices) {
    m.a_f16.resize(m.a.size());
    m.b_t_f16.resize(m.b_t.size());
    f32_to_f16_n(m.a.data(), m.a_f16.data(), m.a.size());
    f32_to_f16_n(m.b_t.data(), m.b_t_f16.data(), m.b_t.size());
    for (const auto* half : {&m.a_f16, &m.b_t_f16})
      if (std::any_of(half->begin(), half->end(), [](uint16_t h) { return (h & 0x7c00u) == 0x7c00u; }))
        throw InputError(adapter.path, std::nullopt, m.target + ": a factor is beyond f16's range (65504)");
  }
}

uint64_t Adapter::bytes() const {
  uint64_t n = 0;
  for (const LoraMatrix& m : matrices)
    n += (m.a.size() + m.b_t.size()) * sizeof(float) + (m.a_f16.size() + m.b_t_f16.size()) * sizeof(uint16_t);
  return n;
}

void Adapter::drop_f32() {
  for (LoraMatrix& m : matrices) {
    m.a = {};
    m.b_t = {};
  }
}

Adapter load_adapter(const std::filesystem::path& path, const engine::Model& base) {
  std::error_code ec;
  const bool peft = std::filesystem::is_directory(path, ec) || path.extension() == ".json";
  Adapter adapter = peft ? read_peft(path, base.hp) : read_gguf_lora(path);
  check_against(adapter, base);
  make_f16_factors(adapter);
  return adapter;
}

std::vector<engine::LowRankDelta> resolve(const Adapter& adapter, const engine::Model& model, float user_scale) {
  const auto weights = adaptable_weights(model);
  std::vector<engine::LowRankDelta> out;
  for (const LoraMatrix& m : adapter.matrices) {
    const auto it = weights.find(m.target);
    if (it == weights.end()) throw std::invalid_argument("lora::resolve: " + m.target + " is not in the model");
    if (m.a_f16.empty()) throw std::invalid_argument("lora::resolve: " + m.target + " has no f16 factors (load_adapter makes them)");
    out.push_back({it->second, m.rank, m.a_f16.data(), m.b_t_f16.data(), m.scale * user_scale});
  }
  return out;
}

std::vector<float> transposed(const std::vector<float>& m, int64_t rows, int64_t cols) {
  std::vector<float> out(m.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) out[static_cast<size_t>(c * rows + r)] = m[static_cast<size_t>(r * cols + c)];
  return out;
}

AdapterSpec parse_adapter_spec(const std::string& spec) {
  const size_t colon = spec.rfind(':');
  if (colon == std::string::npos || colon + 1 == spec.size()) return {spec, 1.0f};
  const std::string tail = spec.substr(colon + 1);
  char* end = nullptr;
  const float scale = std::strtof(tail.c_str(), &end);
  if (end != tail.c_str() + tail.size() || !std::isfinite(scale)) return {spec, 1.0f};
  return {spec.substr(0, colon), scale};
}

}  // namespace optiq::lora
