// `slidesparse bench kernel`: GEMM-only and full-layer timings of dense (cuBLASLt) vs slided n:m
// (cuSPARSELt) linear layers over model shapes and an M sweep (src/cuda/kernel_bench.cpp).
#include <memory>
#include <string>
#include <vector>

#include "cli.h"
#include "cli_lists.h"
#ifdef SLIDESPARSE_WITH_CUDA
#include "cuda/kernel_bench.h"
#endif

namespace slidesparse::cli {
namespace {

struct BenchArgs {
  std::string models = "qwen2.5-7b", square, Ms = "1,16,64,256,1024,4096,8192,16384,32768,65536";
  std::string dtypes = "int8,fp8,bf16", patterns = "2:4,4:6,6:8,8:10", tuning, out;
  std::string backends = "cusparselt";
  int reps = 20, candidates = 4;
};

CommandRegistrar reg_bench_kernel(
    "bench", "kernel",
    "Time dense vs slided n:m GPU linear layers (GEMM only and full layer) over an M sweep",
    [](CLI::App& sub) -> CommandFn {
      auto a = std::make_shared<BenchArgs>();
      sub.add_option("--model", a->models,
                     "Comma list of llama3.2-1b, llama3.2-3b, qwen2.5-7b, qwen2.5-14b, all "
                     "(empty string with --square: square mode only)");
      sub.add_option("--square", a->square, "Square mode: comma list of N = K sizes");
      sub.add_option("--M", a->Ms, "Comma list of token counts (1..65536)");
      sub.add_option("--dtype", a->dtypes, "Comma list of int8, fp8, bf16, fp16");
      sub.add_option("--pattern", a->patterns,
                     "Comma list of sparse patterns (2:4, 4:6, 6:8, ...)");
      sub.add_option("--backend", a->backends,
                     "Comma list of sparse GEMM backends: cusparselt, cutlass (CUTLASS sm90a, "
                     "int8/fp8; also times the CUTLASS dense layer as the fused baseline)");
      sub.add_option("--reps", a->reps, "Timed runs per measurement (median reported)");
      sub.add_option("--candidates", a->candidates,
                     "cuBLASLt heuristic candidates timed for the dense baseline");
      sub.add_option("--tuning", a->tuning, "Tuning JSON from `slidesparse tune`");
      sub.add_option("--out", a->out, "Output directory for kernel.json and kernel.csv")
          ->required();
      return [a]() -> Status {
#ifdef SLIDESPARSE_WITH_CUDA
        cuda::KernelBenchOptions o;
        o.models = split_list(a->models);
        SS_RETURN_IF_ERROR(parse_ints("--square", a->square, &o.square));
        SS_RETURN_IF_ERROR(parse_ints("--M", a->Ms, &o.Ms));
        if (o.Ms.empty()) return invalid_argument("--M: empty list");
        o.precisions = split_list(a->dtypes);
        o.patterns = split_list(a->patterns);
        o.backends = split_list(a->backends);
        o.reps = a->reps;
        o.dense_candidates = a->candidates;
        o.tuning = a->tuning;
        o.out_dir = a->out;
        return cuda::run_kernel_bench(o);
#else
        return unsupported("bench kernel needs the CUDA backend (this build has none)");
#endif
      };
    });

}  // namespace
}  // namespace slidesparse::cli
