#include "train/train_state.h"

#include <cstring>
#include <type_traits>

#include "io/safetensors.h"
#include "util/error.h"

namespace optiq::train {

nlohmann::json record_to_json(const TrainRecord& r) {
  nlohmann::json train = nlohmann::json::array(), valid = nlohmann::json::array();
  for (const auto& p : r.train_curve)
    train.push_back({{"step", p.step}, {"loss", p.loss}, {"lr", p.lr}, {"grad_norm", p.grad_norm}, {"tokens", p.tokens}});
  for (const auto& p : r.valid_curve) valid.push_back({{"step", p.step}, {"loss", p.loss}});
  return {{"train_curve", train},
          {"valid_curve", valid},
          {"steps", r.steps},
          {"total_steps", r.total_steps},
          {"resumed_from", r.resumed_from},
          {"tokens_processed", r.tokens_processed},
          {"seconds",
           {{"forward", r.times.forward},
            {"head", r.times.head},
            {"backward", r.times.backward},
            {"optimizer", r.optimizer_seconds},
            {"eval", r.eval_seconds},
            {"train", r.train_seconds}}}};
}

TrainRecord record_from_json(const nlohmann::json& j) {
  TrainRecord r;
  for (const auto& p : j.at("train_curve"))
    r.train_curve.push_back({p.at("step").get<int64_t>(), p.at("loss").get<double>(), p.at("lr").get<double>(),
                             p.at("grad_norm").get<double>(), p.at("tokens").get<int64_t>()});
  for (const auto& p : j.at("valid_curve")) r.valid_curve.push_back({p.at("step").get<int64_t>(), p.at("loss").get<double>()});
  r.steps = j.at("steps").get<int64_t>();
  r.total_steps = j.at("total_steps").get<int64_t>();
  r.resumed_from = j.at("resumed_from").get<int64_t>();
  r.tokens_processed = j.at("tokens_processed").get<int64_t>();
  const auto& s = j.at("seconds");
  r.times = {s.at("forward").get<double>(), s.at("head").get<double>(), s.at("backward").get<double>()};
  r.optimizer_seconds = s.at("optimizer").get<double>();
  r.eval_seconds = s.at("eval").get<double>();
  r.train_seconds = s.at("train").get<double>();
  return r;
}

namespace {

constexpr const char* kStateKey = "optiq_train_state";

// The factor's six tensors in file order, with their names (const or mutable as f and m are).
template <typename Factors, typename Moments>
auto tensors_of(Factors& f, Moments& m) {
  using Values = std::conditional_t<std::is_const_v<Factors>, const std::vector<float>, std::vector<float>>;
  const std::string& n = f.target->name;
  return std::vector<std::pair<std::string, Values*>>{{n + ".a", &f.a},     {n + ".b", &f.b},     {n + ".m_a", &m.m_a},
                                                       {n + ".v_a", &m.v_a}, {n + ".m_b", &m.m_b}, {n + ".v_b", &m.v_b}};
}

}  // namespace

void save_train_state(const std::filesystem::path& path, const TrainableAdapter<float>& adapter, const TrainState& state) {
  std::vector<SafetensorsDecl> decls;
  std::vector<const std::vector<float>*> data;
  for (size_t i = 0; i < adapter.size(); ++i)
    for (const auto& [name, values] : tensors_of(adapter[i], state.moments[i])) {
      decls.push_back({name, SafetensorsDtype::F32, {values->size()}});
      data.push_back(values);
    }
  const nlohmann::json meta = {{"fingerprint", state.fingerprint}, {"step", state.step}, {"record", record_to_json(state.record)}};
  write_safetensors(path.string(), {{kStateKey, meta.dump()}}, decls,
                    [&](size_t i, const SafetensorsWriteFn& write) { write(data[i]->data(), data[i]->size() * sizeof(float)); });
}

std::optional<std::string> train_state_fingerprint(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  const SafetensorsFile file(path.string());
  const auto it = file.contents().metadata.find(kStateKey);
  if (it == file.contents().metadata.end()) throw InputError(path.string(), std::nullopt, "is not an optiq training state");
  try {
    return nlohmann::json::parse(it->second).at("fingerprint").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path.string(), std::nullopt, std::string("damaged training state: ") + e.what());
  }
}

TrainState load_train_state(const std::filesystem::path& path, TrainableAdapter<float>& adapter) {
  const SafetensorsFile file(path.string());
  const auto it = file.contents().metadata.find(kStateKey);
  if (it == file.contents().metadata.end()) throw InputError(path.string(), std::nullopt, "is not an optiq training state");
  TrainState state;
  try {
    const nlohmann::json meta = nlohmann::json::parse(it->second);
    state.fingerprint = meta.at("fingerprint").get<std::string>();
    state.step = meta.at("step").get<int64_t>();
    state.record = record_from_json(meta.at("record"));
  } catch (const nlohmann::json::exception& e) {
    throw InputError(path.string(), std::nullopt, std::string("damaged training state: ") + e.what());
  }
  state.moments.resize(adapter.size());
  for (size_t i = 0; i < adapter.size(); ++i) {
    FactorMoments& m = state.moments[i];
    m.m_a.resize(adapter[i].a.size()), m.v_a.resize(adapter[i].a.size());
    m.m_b.resize(adapter[i].b.size()), m.v_b.resize(adapter[i].b.size());
    for (auto& [name, values] : tensors_of(adapter[i], m)) {
      const SafetensorsTensor* t = file.find(name);
      if (!t || t->dtype != SafetensorsDtype::F32 || t->n_elements() != values->size())
        throw InputError(path.string(), std::nullopt, "tensor " + name + " is missing or has another shape: the state is of another adapter");
      const auto bytes = file.data(*t);
      std::memcpy(values->data(), bytes.data(), bytes.size());
    }
  }
  return state;
}

}  // namespace optiq::train
