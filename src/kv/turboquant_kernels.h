// The inner loops of TurboQuant scoring and accumulation over one section of channels that all
// have the same code width: groups of 8 channels, group g's codes in bytes [g*bits, (g+1)*bits)
// as a little-endian bit stream (channel 8g+j in bits [j*bits, (j+1)*bits)). Scalar versions
// run everywhere; the AVX2 ones (turboquant_avx2.cpp, compiled with -mavx2 -mfma) only where
// the CPU has AVX2 and FMA.
#pragma once

#include <cstdint>

namespace optiq::kv::detail {

// sum over the section's channels of q[i] * centroids[code_i].
// q: [8 * groups]; codes: [bits * groups] bytes; centroids: [2^bits]; bits 1..4.
float score_codes_scalar(int bits, const float* q, const uint8_t* codes, const float* centroids, int64_t groups);
float score_codes_avx2(int bits, const float* q, const uint8_t* codes, const float* centroids, int64_t groups);

// out[i] += scale * centroids[code_i] for the section's channels; out: [8 * groups].
void accumulate_codes_scalar(int bits, float* out, float scale, const uint8_t* codes, const float* centroids,
                             int64_t groups);
void accumulate_codes_avx2(int bits, float* out, float scale, const uint8_t* codes, const float* centroids,
                           int64_t groups);

// out[i] = centroids[code_i] for the section's channels; out: [8 * groups].
void decode_codes_scalar(int bits, float* out, const uint8_t* codes, const float* centroids, int64_t groups);
void decode_codes_avx2(int bits, float* out, const uint8_t* codes, const float* centroids, int64_t groups);

// True when the AVX2 kernels may run here (the dot kernels' check, quant/dot.h).
bool turbo_avx2_available();

}  // namespace optiq::kv::detail
