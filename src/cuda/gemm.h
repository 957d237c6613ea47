// GEMM backends of the CUDA linear layer, one contract for both (CUTLASS style):
// can_implement -> workspace/initialize (plans cached by shape key) -> run(stream).
// Layout (DESIGN.md, TN / column-major): W [N, K] and X [M, K] row-major; D = W(op T) * X is
// column-major N x M with leading dimension ldd, i.e. row-major [M, ldd] = Y.
// Types: in BF16/F16 -> D same type (fp32 accumulate); I8 -> D I32; F8_E4M3 -> D F32.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cusparseLt.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/cuda_check.h"
#include "slidesparse/dtype.h"
#include "slidesparse/status.h"

namespace slidesparse::cuda {

// The CUDA library data type of a GEMM operand (cuBLASLt and cuSPARSELt share it); F32 otherwise.
inline cudaDataType cuda_data_type(DType t) {
  switch (t) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kI8:
      return CUDA_R_8I;
    case DType::kF8E4M3:
      return CUDA_R_8F_E4M3;
    case DType::kI32:
      return CUDA_R_32I;
    default:
      return CUDA_R_32F;
  }
}

// Output (accumulator) dtype of a GEMM over `in`.
DType gemm_out_dtype(DType in);
// Alignment in elements that both libraries want for K, N and M of 8/16-bit operands.
int64_t gemm_align(DType in);

// ---- cuBLASLt dense ----
// algo: -1 = the library's first heuristic; i >= 0 = the i-th heuristic candidate.
class GemmDense {
 public:
  // workspace: shared by GEMMs that run one after another on one stream (grown to 64 MiB);
  // null: this GEMM allocates its own.
  static Expected<std::unique_ptr<GemmDense>> create(
      DType in, std::shared_ptr<DeviceBuffer> workspace = nullptr);
  ~GemmDense();
  GemmDense(const GemmDense&) = delete;
  GemmDense& operator=(const GemmDense&) = delete;

  DType in_dtype() const { return in_; }
  Status can_implement(int64_t M, int64_t N, int64_t K) const;
  // Number of heuristic candidates (<= max) for this shape.
  Expected<int> candidates(int64_t M, int64_t N, int64_t K, int64_t ldd, int max);
  // w: [N, K] (ld K); x: [M, K] (ld K); d: [M, ldd].
  Status run(const void* w, const void* x, void* d, int64_t M, int64_t N, int64_t K, int64_t ldd,
             int algo, cudaStream_t stream);

 private:
  struct Plan;
  explicit GemmDense(DType in);
  Expected<Plan*> plan(int64_t M, int64_t N, int64_t K, int64_t ldd);
  DType in_;
  cublasLtHandle_t handle_ = nullptr;
  std::shared_ptr<DeviceBuffer> workspace_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans_;
};

// ---- cuSPARSELt 2:4 ----
struct SparseAlgo {
  int alg_id = -1;  // -1: library default (heuristic)
  int split_k = 1;
  int split_k_mode = 0;     // 0: library default
  int split_k_buffers = 0;  // 0: library default
  bool operator<(const SparseAlgo& o) const {
    return std::tie(alg_id, split_k, split_k_mode, split_k_buffers) <
           std::tie(o.alg_id, o.split_k, o.split_k_mode, o.split_k_buffers);
  }
  std::string str() const;
};

class LtHandle;  // shared cuSPARSELt library handle

// One structured (2:4) weight, compressed once; plans cached by (M_pad, algo).
class GemmSparse24 {
 public:
  // w_dense: device [N_pad, K_pad] row-major, 2:4 along K; N_pad, K_pad multiples of
  // gemm_align(in). The dense copy is not kept.
  static Expected<std::unique_ptr<GemmSparse24>> create(DType in, int64_t N_pad, int64_t K_pad,
                                                        const void* w_dense, cudaStream_t stream);
  ~GemmSparse24();
  GemmSparse24(const GemmSparse24&) = delete;
  GemmSparse24& operator=(const GemmSparse24&) = delete;

  DType in_dtype() const { return in_; }
  int64_t N_pad() const { return N_pad_; }
  int64_t K_pad() const { return K_pad_; }
  size_t compressed_bytes() const { return compressed_.bytes(); }
  Status can_implement(int64_t M_pad) const;
  // Highest ALG_CONFIG_ID for this M (from the library).
  Expected<int> max_alg_id(int64_t M_pad);
  // x: [M_pad, K_pad]; d: [M_pad, N_pad]. M_pad a multiple of gemm_align(in).
  Status run(const void* x, void* d, int64_t M_pad, const SparseAlgo& algo, cudaStream_t stream);
  // cusparseLtMatmulSearch on these buffers; returns the configuration it picked.
  Expected<SparseAlgo> search(const void* x, void* d, int64_t M_pad, cudaStream_t stream);

 private:
  struct Plan;
  GemmSparse24();
  Expected<Plan*> plan(int64_t M_pad, const SparseAlgo& algo);
  DType in_ = DType::kBF16;
  int64_t N_pad_ = 0, K_pad_ = 0;
  std::shared_ptr<LtHandle> lt_;
  std::unique_ptr<cusparseLtMatDescriptor_t> matA_;
  DeviceBuffer compressed_;
  DeviceBuffer workspace_;
  std::map<std::pair<int64_t, SparseAlgo>, std::unique_ptr<Plan>> plans_;
};

}  // namespace slidesparse::cuda
