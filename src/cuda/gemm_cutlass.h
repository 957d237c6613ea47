// CUTLASS 3.x GEMMs for Hopper (sm_90a), a second backend beside cuBLASLt / cuSPARSELt (gemm.h):
// the 2:4 structured-sparse GEMM over the slided weight (compressed at load with CUTLASS's own
// compressor) and a dense GEMM of the same tiling family, both int8 or fp8 e4m3, each in two forms:
//   GEMM only: d = acc (I32 for int8, F32 for fp8), like the other backends;
//   fused:     y = bf16(((acc * s_x[m]) * s_w[n]) + bias[n]) written by the GEMM's epilogue (an
//              epilogue visitor tree), the same three fp32 roundings as kernels/epilogue.cu;
//              with a residual r: y = bf16(r + that bf16) (a third kernel per configuration that
//              also loads r; y may be r: the residual stream updated in place).
// Layout as gemm.h (TN): W [N, K] row-major (A, K-major), X [M, K] row-major (B, K-major);
// D = W * X^T is column-major N x M, i.e. row-major [M, ldd] = Y. No CUTLASS types here: the
// kernels live in src/cuda/cutlass/ (built with -DSLIDESPARSE_CUTLASS=ON, 90a only).
// Contract: can_implement -> (workspace, initialize: cached per shape and pointers) -> run(stream).
// Each object holds configs() (<= kMaxConfigs) compiled configurations (tile / cluster /
// schedule) over one weight; `config` picks one (0 = the default), so callers can tune per shape
// like the library backends.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda {

// The fused epilogue's vectors. s_x: [>= M] per token; s_w, bias: [>= N_gemm] per output
// channel (bias may be null: 0). All fp32 device pointers. residual: null, or bf16 [M, ldy] with
// the output's leading dimension (may equal y: in place).
struct CutlassEpilogue {
  const float* s_x = nullptr;
  const float* s_w = nullptr;
  const float* bias = nullptr;
  const void* residual = nullptr;
};

class GemmCutlass {
 public:
  virtual ~GemmCutlass() = default;
  GemmCutlass(const GemmCutlass&) = delete;
  GemmCutlass& operator=(const GemmCutlass&) = delete;

  // Sparse: w_dense is device [N_pad, K_pad] row-major, 2:4 along K; rows [0, N_gemm) are
  // compressed (N_gemm = round_up(N, 8)), the dense copy is not kept. K_pad % 64 == 0.
  static Expected<std::unique_ptr<GemmCutlass>> create_sparse(DType in, int64_t N, int64_t K_pad,
                                                              int64_t ld_w, const void* w_dense,
                                                              cudaStream_t stream);
  // Dense: w is device [N_gemm, K_pad] row-major (ld K_pad); not owned, must outlive this.
  static Expected<std::unique_ptr<GemmCutlass>> create_dense(DType in, int64_t N, int64_t K_pad,
                                                             const void* w);
  // Rows of the GEMM (CUTLASS M): the output channels rounded up to 8 (TMA alignment of D).
  static int64_t n_gemm(int64_t N) { return (N + 7) / 8 * 8; }

  DType in_dtype() const { return in_; }
  int64_t N() const { return N_; }
  int64_t N_gemm() const { return n_gemm(N_); }
  int64_t K_pad() const { return K_pad_; }
  bool sparse() const { return sparse_; }
  static constexpr int kMaxConfigs = 8;
  virtual int configs() const = 0;  // compiled configurations, 1 .. kMaxConfigs
  virtual std::string describe() const = 0;
  virtual std::string config_name(int config) const = 0;
  virtual size_t weight_bytes() const = 0;  // compressed values + metadata (sparse) or dense

  // Ok iff a GEMM of M tokens with these leading dimensions can run (M >= 1, ldd >= N_gemm and a
  // multiple of 4 (acc) or 8 (fused)).
  Status can_implement(int64_t M, int64_t ldd, bool fused) const;
  // GEMM only. x: [M, K_pad] (ld K_pad); d: [M, ldd] I32/F32, columns [0, N_gemm) written.
  virtual Status run(const void* x, void* d, int64_t M, int64_t ldd, int config,
                     cudaStream_t stream) = 0;
  // Fused dequant + bias (+ residual), bf16 out. y: [M, ldy], columns [0, N_gemm) written.
  virtual Status run_fused(const void* x, const CutlassEpilogue& e, void* y, int64_t M, int64_t ldy,
                           int config, cudaStream_t stream) = 0;

 protected:
  GemmCutlass() = default;
  DType in_ = DType::kI8;
  int64_t N_ = 0, K_pad_ = 0;
  bool sparse_ = true;
};

// True when this build has the CUTLASS kernels (SLIDESPARSE_CUTLASS=ON); the device must still
// be sm_90 (create_* say kUnsupported otherwise).
bool cutlass_built();

}  // namespace slidesparse::cuda
