// The slide: a pruned n:m row becomes (K_pad/m) * (m/2 - 1) overlapping 2:4 windows, and the
// activation lift that matches it, so that X' * W'^T == X * W^T exactly.
//
// Weights: block of m = 2N splits into pairs; window j = 0..N-2 covers positions 2j..2j+3 of the
// block. Visit windows in order and lanes 0..3 in order; place a not-yet-placed nonzero in the
// first window that covers it while that window holds fewer than 2 placed values; write 0
// elsewhere. Example 6:8: [1,0,3,4,0,6,7,8] -> [1,0,3,0 | 0,4,0,6 | 0,0,7,8]. Activations: X'[:,
// b*4(N-1) + 4j + t] = X[:, b*m + 2j + t], t = 0..3; 0 where the source index
// >= K or in the alignment padding.
#pragma once

#include <cstdint>

#include "slidesparse/dtype.h"
#include "slidesparse/pattern.h"
#include "slidesparse/status.h"

namespace slidesparse {

// w: [N, K] elements of dtype t (F32, F16, BF16, F8_E4M3, I8; zero test treats -0.0 as zero).
// out: [N, K_out] with K_out >= p.k_lifted(K); columns past k_lifted(K) are zero.
// Fails (kInvalidArgument, naming row and block) if a nonzero cannot be placed, which happens
// exactly when a block holds more than m-2 nonzeros (the windows' capacity; so a sparser pattern
// such as 5:8 slides like 6:8). Every placement of <= m-2 nonzeros succeeds (tested exhaustively).
// Slided order: the nonzeros of a block keep their ascending position order along K'.
Status slide_weights(DType t, const void* w, int64_t N, int64_t K, Pattern p, void* out,
                     int64_t K_out);

// x: [M, K] elements of dtype t (any dtype of size 1, 2 or 4 bytes: a pure gather).
// out: [M, K_out] with K_out >= p.k_lifted(K); padding is zero.
Status lift_activations(DType t, const void* x, int64_t M, int64_t K, Pattern p, void* out,
                        int64_t K_out);

// Source column of lifted column kp (or -1 for a zero/padding column).
int64_t lift_source_index(int64_t kp, int64_t K, Pattern p);

}  // namespace slidesparse
