// `--sensitivity fast`: a stand-in for the measured KL that needs no per-tensor forward passes,
// only the importance matrix (per-column mean squared input activation) of one pass: the
// expected squared error a quantized tensor adds to its output,
//   matmul weight:   sum_r sum_c imp[c] * (w[r,c] - q[r,c])^2   (= E ||dy||^2 for uncorrelated inputs)
//   token lookup:    mean_r sum_c (w[r,c] - q[r,c])^2           (= E ||dx||^2 for a random token)
// A tied embedding serves both ends and gets both terms. Its units are not nats; how well it
// ranks (tensor, type) pairs like the exact KL does is measured by Spearman's rho.
#pragma once

#include <vector>

#include "engine/model.h"
#include "io/ggml_type.h"
#include "model/model_source.h"

namespace optiq::sensitivity {

// `importance`: [w.n_in] or null (the weight is only looked up: token_embd of an untied model).
// `is_lookup`: w is the token embedding (adds the lookup term). The candidate is
// candidate_weight(w, tensor, type, importance, from_source), and its error is taken against
// the source values when `from_source`, else against w.
double proxy_error(const engine::Weight& w, const SourceTensor& tensor, GgmlType type, const float* importance,
                   bool is_lookup, bool from_source);

// Spearman's rank correlation of two equally long samples (ties get their average rank);
// NaN when either sample is constant or has fewer than two values.
double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace optiq::sensitivity
