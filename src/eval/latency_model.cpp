#include "eval/latency_model.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "util/atomic_file.h"
#include "util/error.h"

namespace optiq::eval {

double weight_bytes_per_token(GgmlType type, int64_t n_in, int64_t n_out, bool lookup) {
  const auto& t = ggml_traits(type);
  const double row = static_cast<double>(n_in) / t.block_elems * t.block_bytes;
  return lookup ? row : row * static_cast<double>(n_out);
}

std::vector<DecodeWeight> decode_weights(const engine::Model& model) {
  std::vector<DecodeWeight> out = {{&model.token_embd, model.output.n_out != 0}};
  for (const auto& l : model.layers)
    for (const engine::Weight* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) out.push_back({w, false});
  if (model.output.n_out) out.push_back({&model.output, false});
  return out;
}

TypeBytes decode_bytes(const engine::Model& model) { return decode_bytes(model, {}); }

TypeBytes decode_bytes(const engine::Model& model, const std::map<std::string, GgmlType>& type_of_weight) {
  TypeBytes bytes;
  for (const auto& [w, lookup] : decode_weights(model)) {
    const auto it = type_of_weight.find(w->name);
    const GgmlType type = it == type_of_weight.end() ? w->type : it->second;
    bytes[type] += weight_bytes_per_token(type, w->n_in, w->n_out, lookup);
  }
  return bytes;
}

double LatencyFit::predict_seconds(const TypeBytes& bytes) const {
  double t = overhead_seconds;
  for (const auto& [type, b] : bytes) {
    if (b == 0) continue;
    const auto it = seconds_per_byte.find(type);
    if (it == seconds_per_byte.end())
      throw InputError("latency model", std::nullopt,
                       "has no cost for " + std::string(ggml_type_name(type)) +
                           " weights: calibrate with that type (optiq latency MODEL --calibrate --types ...)");
    t += it->second * b;
  }
  return t;
}

LatencyFit fit_latency(const std::vector<TypeBytes>& runs, const std::vector<double>& seconds) {
  if (runs.size() != seconds.size()) throw std::invalid_argument("fit_latency: runs and timings differ in number");
  std::vector<GgmlType> types;
  for (const auto& r : runs)
    for (const auto& [type, b] : r)
      if (b > 0 && std::find(types.begin(), types.end(), type) == types.end()) types.push_back(type);
  const size_t n = types.size() + 1;  // unknowns: c0, then a[types]
  if (runs.size() < n)
    throw std::invalid_argument("fit_latency: " + std::to_string(runs.size()) + " runs for " + std::to_string(n) +
                                " unknowns (the overhead and one cost per type)");
  // Rows: features / seconds against a target of 1 (relative error); columns scaled to unit norm.
  std::vector<std::vector<double>> rows;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!(seconds[i] > 0)) throw std::invalid_argument("fit_latency: a run's time is not positive");
    std::vector<double> row(n, 0.0);
    row[0] = 1.0 / seconds[i];
    for (size_t k = 0; k < types.size(); ++k) {
      const auto it = runs[i].find(types[k]);
      row[k + 1] = it == runs[i].end() ? 0.0 : it->second / seconds[i];
    }
    rows.push_back(std::move(row));
  }
  std::vector<double> scale(n, 0.0);
  for (const auto& row : rows)
    for (size_t k = 0; k < n; ++k) scale[k] += row[k] * row[k];
  for (auto& s : scale) s = s > 0 ? std::sqrt(s) : 1.0;
  // Gram matrix and right-hand side of the scaled problem.
  std::vector<std::vector<double>> g(n, std::vector<double>(n, 0.0));
  std::vector<double> h(n, 0.0);
  for (const auto& row : rows)
    for (size_t a = 0; a < n; ++a) {
      h[a] += row[a] / scale[a];
      for (size_t b = 0; b < n; ++b) g[a][b] += row[a] / scale[a] * row[b] / scale[b];
    }
  // Coordinate descent with projection onto x >= 0 (converges for a positive semi-definite g).
  std::vector<double> x(n, 0.0);
  for (int sweep = 0; sweep < 200000; ++sweep) {
    double moved = 0;
    for (size_t a = 0; a < n; ++a) {
      if (g[a][a] <= 0) continue;
      double grad = -h[a];
      for (size_t b = 0; b < n; ++b) grad += g[a][b] * x[b];
      const double next = std::max(0.0, x[a] - grad / g[a][a]);
      moved = std::max(moved, std::abs(next - x[a]));
      x[a] = next;
    }
    if (moved < 1e-14) break;
  }
  LatencyFit fit;
  fit.overhead_seconds = x[0] / scale[0];
  for (size_t k = 0; k < types.size(); ++k) fit.seconds_per_byte[types[k]] = x[k + 1] / scale[k + 1];
  return fit;
}

std::string LatencyKey::text() const {
  return cpu + " | " + std::to_string(threads) + " threads | " + shape + " | " + std::to_string(n_gen) + " tokens";
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("model name")) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(colon + 1);
        name.erase(0, name.find_first_not_of(" \t"));
        return name;
      }
    }
  return "unknown CPU";
}

std::string model_shape(const engine::HParams& hp) {
  std::ostringstream s;
  s << arch_gguf_name(hp.arch) << " L" << hp.n_layer << " E" << hp.n_embd << " F" << hp.n_ff << " H" << hp.n_head << "/"
    << hp.n_head_kv << " V" << hp.n_vocab;
  return s.str();
}

std::filesystem::path default_latency_cache() {
  if (const char* d = std::getenv("OPTIQ_CACHE_DIR"); d && *d) return std::filesystem::path(d) / "latency.json";
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return std::filesystem::path(d) / "optiq" / "latency.json";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home && *home ? home : ".") / ".cache" / "optiq" / "latency.json";
}

namespace {

nlohmann::json read_cache(const std::filesystem::path& cache) {
  if (!std::filesystem::exists(cache)) return {{"format", "optiq-latency"}, {"entries", nlohmann::json::object()}};
  std::ifstream in(cache, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("entries") || !j["entries"].is_object())
    throw InputError(cache.string(), std::nullopt, "is not an optiq latency cache (no \"entries\" object)");
  return j;
}

nlohmann::json bytes_json(const TypeBytes& b) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [type, v] : b) j[std::string(ggml_type_name(type))] = v;
  return j;
}

}  // namespace

void save_latency_fit(const std::filesystem::path& cache, const LatencyKey& key, const LatencyFit& fit,
                      const std::vector<CalibrationRecord>& runs) {
  nlohmann::json j = read_cache(cache);
  nlohmann::json e;
  e["cpu"] = key.cpu;
  e["threads"] = key.threads;
  e["shape"] = key.shape;
  e["n_gen"] = key.n_gen;
  e["overhead_seconds"] = fit.overhead_seconds;
  e["seconds_per_byte"] = nlohmann::json::object();
  for (const auto& [type, a] : fit.seconds_per_byte) e["seconds_per_byte"][std::string(ggml_type_name(type))] = a;
  for (const auto& r : runs)
    e["runs"].push_back({{"label", r.label}, {"bytes", bytes_json(r.bytes)}, {"seconds", r.seconds},
                         {"predicted_seconds", fit.predict_seconds(r.bytes)}});
  j["entries"][key.text()] = e;
  if (cache.has_parent_path()) std::filesystem::create_directories(cache.parent_path());
  write_file_atomically(cache, j.dump(2) + "\n");
}

std::optional<LatencyFit> load_latency_fit(const std::filesystem::path& cache, const LatencyKey& key) {
  const nlohmann::json j = read_cache(cache);
  const nlohmann::json* found = nullptr;
  for (const auto& [name, e] : j["entries"].items()) {
    const bool same = key.n_gen ? name == key.text()
                                : e.is_object() && e.value("cpu", "") == key.cpu && e.value("threads", 0) == key.threads &&
                                      e.value("shape", "") == key.shape;
    if (same) {
      found = &e;
      break;
    }
  }
  if (!found) return std::nullopt;
  const auto& e = *found;
  LatencyFit fit;
  try {
    fit.overhead_seconds = e.at("overhead_seconds").get<double>();
    for (const auto& [name, a] : e.at("seconds_per_byte").items()) {
      const auto type = ggml_type_from_name(name);
      if (!type) throw InputError(cache.string(), std::nullopt, "names an unknown type '" + name + "'");
      fit.seconds_per_byte[*type] = a.get<double>();
    }
  } catch (const nlohmann::json::exception& ex) {
    throw InputError(cache.string(), std::nullopt, "entry '" + key.text() + "' is malformed: " + ex.what());
  }
  return fit;
}

}  // namespace optiq::eval
