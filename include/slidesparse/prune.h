// N:M pruning by magnitude or Wanda. The selection rule is part of the checkpoint format:
// per row and per aligned block of m (K zero-padded to K_pad), keep exactly n positions, the n
// largest scores, ties broken by the lower position. Score = |w| or |w| * ||x_k||_2. -0.0 is zero.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/pattern.h"
#include "slidesparse/status.h"

namespace slidesparse {

enum class PruneMethod { kMagnitude, kWanda };
Expected<PruneMethod> prune_method_parse(std::string_view s);  // "magnitude" | "wanda"
const char* prune_method_name(PruneMethod m);

// w: [N, K] fp32. act_norms: [K] (Wanda; must be null for magnitude). Returns the block masks
// [N, K_pad/m]: bit i set iff position i of the block is kept; popcount == n exactly.
// Errors (kInvalidArgument, one line naming row/column): a non-finite weight; Wanda without norms;
// a negative or non-finite norm; magnitude with norms.
Expected<std::vector<uint16_t>> prune_select(const float* w, int64_t N, int64_t K, Pattern p,
                                             PruneMethod method, const float* act_norms);
// Same, with the length of act_norms checked: Wanda needs exactly K norms (0 for magnitude).
Expected<std::vector<uint16_t>> prune_select(const float* w, int64_t N, int64_t K, Pattern p,
                                             PruneMethod method, const float* act_norms,
                                             int64_t act_norms_count);

// Zero, in place, every element of w [N, K] whose bit is not set in masks.
void prune_apply(float* w, int64_t N, int64_t K, Pattern p, const uint16_t* masks);

// True iff every aligned block of every row of w [N, K] (elements of dtype t) has <= n nonzeros.
// -0.0 counts as zero.
Expected<bool> pattern_holds(DType t, const void* w, int64_t N, int64_t K, Pattern p);

}  // namespace slidesparse
