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

// Many rows against up to 4 queries at once (grouped-query attention: the query heads that
// share a K/V head), each row's codes decoded once for all of them. Row p's section codes are
// at codes + p * row_stride; query (output) j at q + j * q_stride (out + j * out_stride).
// out[j * out_stride + p] += sum over the section's channels of q_j[i] * centroids[code_{p,i}];
// n_q 1..4.
void score_rows_scalar(int bits, const float* q, int64_t q_stride, int n_q, const uint8_t* codes, size_t row_stride,
                       int64_t n, const float* centroids, int64_t groups, float* out, int64_t out_stride);
void score_rows_avx2(int bits, const float* q, int64_t q_stride, int n_q, const uint8_t* codes, size_t row_stride,
                     int64_t n, const float* centroids, int64_t groups, float* out, int64_t out_stride);
// out_j[i] += sum_p w[j * w_stride + p] * centroids[code_{p,i}] over the section's channels,
// out_j = out + j * out_stride: [8 * groups]; n_q 1..4.
void accumulate_rows_scalar(int bits, float* out, int64_t out_stride, int n_q, const float* w, int64_t w_stride,
                            const uint8_t* codes, size_t row_stride, int64_t n, const float* centroids, int64_t groups);
void accumulate_rows_avx2(int bits, float* out, int64_t out_stride, int n_q, const float* w, int64_t w_stride,
                          const uint8_t* codes, size_t row_stride, int64_t n, const float* centroids, int64_t groups);

// True when the AVX2 kernels may run here (the dot kernels' check, quant/dot.h).
bool turbo_avx2_available();

}  // namespace optiq::kv::detail
