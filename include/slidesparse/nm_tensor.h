// The compact n:m tensor of a SlideSparse checkpoint: values [N, (K_pad/m)*n] (selected values of
// each block in ascending position order) + masks [N, K_pad/m] (bit i = position i kept; popcount
// == n) + per-row weight scales when quantized.
#pragma once

#include <cstdint>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/pattern.h"
#include "slidesparse/prune.h"
#include "slidesparse/quant.h"
#include "slidesparse/status.h"

namespace slidesparse {

struct NmTensor {
  Pattern pattern;
  int64_t N = 0, K = 0;
  DType value_dtype = DType::kBF16;  // BF16/F16 (quant none), I8, F8_E4M3
  std::vector<uint8_t> values;       // [N, blocks*n] elements of value_dtype
  std::vector<uint16_t> masks;       // [N, blocks]
  std::vector<float> scales;         // [N] when quantized, else empty

  int64_t blocks() const { return pattern.blocks(K); }
  int64_t values_per_row() const { return blocks() * pattern.n; }
  DType mask_dtype() const { return pattern.m <= 8 ? DType::kU8 : DType::kU16; }
  QuantMode quant() const;
};

// Dense [N, K] elements of dtype t (already pruned and, if quantized, quantized) + masks ->
// compact. Positions >= K (padding) that are selected store 0. Errors: t not BF16/F16/I8/F8_E4M3,
// a mask whose popcount != n or with bits >= m, a nonzero the mask does not select (row, column).
// scales are left empty: the caller sets them for I8/F8_E4M3.
Expected<NmTensor> nm_pack(DType t, const void* dense, int64_t N, int64_t K, Pattern p,
                           const uint16_t* masks);
// Compact -> dense [N, K] elements of value_dtype, zeros where not selected.
// Precondition (unchecked): nm_verify(t) is ok — call it on anything read from a file.
void nm_unpack(const NmTensor& t, void* dense);
// Rows [r0, r1) of nm_unpack into dense (the whole [N, K] buffer): row ranges on several threads.
void nm_unpack_rows(const NmTensor& t, int64_t r0, int64_t r1, void* dense);
// Checks sizes of values/masks/scales, value dtype, scales finite and > 0 (quantized only),
// popcount == n for every mask, no bit >= m, and zeros in selected padding positions (>= K);
// names row/block on failure (kFormatError).
Status nm_verify(const NmTensor& t);

// The whole conversion of one linear weight: fp32 w [N, K] -> prune -> (quantize per output
// channel) -> pack. value dtype for kNone is `float_dtype` (BF16 or F16, the model's dtype).
// Row chunks run on `threads` threads (0: hardware concurrency, at most 16; 1 when the caller
// already parallelizes); the result does not depend on the thread count.
Expected<NmTensor> nm_compress(const float* w, int64_t N, int64_t K, Pattern p, PruneMethod method,
                               const float* act_norms, QuantMode q, DType float_dtype,
                               int threads = 0);

// Row-wise concatenation [N0 + N1 + ..., K] of compact tensors (q|k|v, gate|up fused into one
// layer): same pattern, K and value dtype required; values, masks and scales are appended in order.
// Errors (kInvalidArgument) name the first part that differs and how; no parts is an error too.
Expected<NmTensor> nm_concat_rows(const std::vector<const NmTensor*>& parts);

// Dequantized fp32 dense [N, K] of a compact tensor (value * scale in fp32, zeros elsewhere).
// Same precondition as nm_unpack.
std::vector<float> nm_to_dense_f32(const NmTensor& t);

}  // namespace slidesparse
