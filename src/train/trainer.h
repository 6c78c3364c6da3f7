// The training loop of `optiq lora train`: mini-batches of tokenized examples, gradient
// accumulation, global-norm clipping, AdamW with a warm-up/cosine schedule, validation loss,
// and a state file written every --save-every steps from which a killed run resumes and ends
// with the same factors as an uninterrupted one (the example order and every reduction are
// fixed functions of the seed and the step; the same thread count gives the same bits).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "engine/model.h"
#include "train/adamw.h"
#include "train/dataset.h"
#include "train/lora_model.h"

namespace optiq::train {

struct TrainOptions {
  int64_t iters = 0;           // optimizer steps (0: from epochs)
  double epochs = 0;           // passes over the training examples, when iters is 0
  int64_t batch_size = 4;      // examples per micro-batch
  int64_t grad_accum = 1;      // micro-batches per optimizer step
  double lr = 1e-4;            // peak learning rate
  LrSchedule schedule = LrSchedule::Constant;
  int64_t warmup = 0;          // steps of linear warm-up
  AdamWOptions adamw;          // betas, eps, weight decay
  double grad_clip = 1.0;      // largest global L2 norm of the gradient, 0 = no clipping
  bool grad_checkpoint = false;  // recompute block activations in the backward pass
  int64_t save_every = 100;    // steps between state files (0: only at the end)
  int64_t eval_every = 50;     // steps between validation losses (0: only at start and end)
  int64_t val_batches = 25;    // micro-batches of validation examples per evaluation (0: all)
  uint64_t seed = 0;           // factor initialisation and example order
  bool report = true;          // a status line on stderr every 10 steps and at evaluations
};

// Optimizer steps the options ask for with `n_train` examples.
int64_t total_steps(const TrainOptions& o, int64_t n_train);

// One adapted projection of the adapter being trained.
struct AdapterEntry {
  int64_t layer = 0;
  Module module = Module::Q;
  int64_t rank = 0;
};

// Factors for `entries` on `model`: A uniform in ±1/sqrt(n_in) (PEFT's Kaiming-uniform
// initialisation), B zero, so training starts from the base model; scale alpha / base_rank for
// every entry (a module's alpha grows with its rank, see README "rank rules").
TrainableAdapter<float> init_adapter(const engine::Model& model, const std::vector<AdapterEntry>& entries,
                                     double alpha, int64_t base_rank, uint64_t seed);

// What a run did: optiq_lora_config.json's training summary.
struct TrainRecord {
  struct StepPoint {
    int64_t step = 0;      // 1-based optimizer step
    double loss = 0;       // mean cross-entropy (nats per trained token) of the step's batches
    double lr = 0;         // learning rate it used
    double grad_norm = 0;  // global L2 norm of the gradient before clipping
    int64_t tokens = 0;    // trained (labelled) tokens so far
  };
  struct ValidPoint {
    int64_t step = 0;      // after this many steps (0: the base model)
    double loss = 0;       // mean cross-entropy over the validation tokens evaluated
  };
  std::vector<StepPoint> train_curve;
  std::vector<ValidPoint> valid_curve;
  int64_t steps = 0;              // optimizer steps completed
  int64_t total_steps = 0;
  int64_t resumed_from = 0;       // the step this process started at (0: a fresh run)
  int64_t tokens_processed = 0;   // every token through the model in training passes (this process)
  PassTimes times;                // seconds in each part of the training passes (this process)
  double optimizer_seconds = 0;   // clipping and AdamW (this process)
  double eval_seconds = 0;        // validation passes (this process)
  double train_seconds = 0;       // wall time of the training steps (this process)
};

// Trains `adapter` in place. `state_path` is the resume file: when it exists and was written
// with the same `fingerprint` (model, data and options), training continues from it; when it
// exists with another fingerprint, InputError says so. It is rewritten (atomically) every
// save_every steps and at the end. `valid` may be empty.
TrainRecord train_adapter(const engine::Model& model, TrainableAdapter<float>& adapter,
                          const std::vector<Example>& train, const std::vector<Example>& valid,
                          const TrainOptions& opts, const std::filesystem::path& state_path,
                          const std::string& fingerprint);

// Mean cross-entropy (nats per target token) of the examples under base + adapter.
double mean_loss(const engine::Model& model, TrainableAdapter<float>& adapter, std::span<const Example> examples,
                 int64_t batch_size);

}  // namespace optiq::train
