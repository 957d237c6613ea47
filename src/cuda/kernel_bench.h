// `slidesparse bench kernel` and `slidesparse tune`: GEMM-only and full-layer timings of the GPU
// linear layers over model shapes and an M sweep, and the offline algorithm search that feeds the
// tuning table. CUDA builds only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/status.h"

namespace slidesparse::cuda {

struct KernelBenchOptions {
  std::vector<std::string> models{"qwen2.5-7b"};  // names of DESIGN.md's table, or "all"
  std::vector<int64_t> square;                    // square mode: N = K = each size
  std::vector<int64_t> Ms{1, 16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536};
  std::vector<std::string> precisions{"int8", "fp8", "bf16"};
  std::vector<std::string> patterns{"2:4", "4:6", "6:8", "8:10"};
  std::vector<std::string> backends{"cusparselt"};  // sparse: cusparselt and/or cutlass
  int reps = 20;
  int dense_candidates = 4;  // cuBLASLt heuristic candidates timed for the honest baseline
  std::string tuning;        // tuning JSON (optional)
  std::string out_dir;       // writes kernel.json and kernel.csv (required)
};
Status run_kernel_bench(const KernelBenchOptions& o);

struct TuneOptions {
  std::vector<std::string> models{"qwen2.5-7b"};
  std::vector<int64_t> square;
  std::vector<int64_t> Ms{16, 256, 4096, 16384};  // tuned at M = bucket(M)
  std::vector<std::string> precisions{"int8", "fp8"};
  std::vector<std::string> patterns{"2:4", "6:8"};
  std::vector<int> split_k{1, 2};
  int reps = 5;
  std::string out;  // tuning JSON; entries already there are kept unless re-tuned
};
Status run_tune(const TuneOptions& o);

}  // namespace slidesparse::cuda
