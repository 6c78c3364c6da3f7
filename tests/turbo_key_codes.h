// The key a TurboQuant cache's codes hold for a position, in the space attention compares it in.
#pragma once

#include <cstdint>

#include "engine/kv_cache.h"

namespace optiq::test {

// Position pos's key row from its codes: dequantized a * (k - m), divided by the key scales a
// and plus the key offset m (LayerKVCache::k_offset). out: [n_head_kv, head_dim].
inline void key_from_codes(const engine::LayerKVCache& c, int64_t pos, float* out) {
  const kv::TurboQuantizer& tq = *c.k_turbo();
  const int64_t D = c.head_dim();
  for (int64_t g = 0; g < c.n_head_kv(); ++g) tq.dequantize(c.k_row(pos) + g * tq.row_bytes(), out + g * D);
  for (int64_t i = 0; i < c.row_width(); ++i)
    out[i] = out[i] / c.k_scale()[static_cast<size_t>(i)] + c.k_offset()[static_cast<size_t>(i)];
}

}  // namespace optiq::test
