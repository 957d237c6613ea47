// `slidesparse tune`: offline search of the GEMM configuration per GPU, shape and M bucket
// (cuSPARSELt alg id x split-k + cusparseLtMatmulSearch; cuBLASLt heuristic candidates), written
// as the tuning JSON that `bench kernel --tuning` and the linear layers load.
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

struct TuneArgs {
  std::string models = "qwen2.5-7b", square, Ms = "16,256,4096,16384", dtypes = "int8,fp8";
  std::string patterns = "2:4,6:8", split_k = "1,2", out;
  int reps = 5;
};

CommandRegistrar reg_tune(
    "", "tune",
    "Search cuSPARSELt alg id x split-k and cuBLASLt candidates per shape and M bucket; write "
    "the tuning JSON",
    [](CLI::App& sub) -> CommandFn {
      auto a = std::make_shared<TuneArgs>();
      sub.add_option("--model", a->models, "Comma list of model names (see bench kernel) or all");
      sub.add_option("--square", a->square, "Also tune square shapes N = K (comma list)");
      sub.add_option("--M", a->Ms,
                     "Comma list of M values; each is tuned at its bucket (next power of two)");
      sub.add_option("--dtype", a->dtypes, "Comma list of int8, fp8, bf16, fp16");
      sub.add_option("--pattern", a->patterns, "Comma list of sparse patterns");
      sub.add_option("--split-k", a->split_k, "Comma list of split-k values to sweep");
      sub.add_option("--reps", a->reps, "Timed runs per configuration (median)");
      sub.add_option("--out", a->out, "Tuning JSON to write (merged with an existing one)")
          ->required();
      return [a]() -> Status {
#ifdef SLIDESPARSE_WITH_CUDA
        cuda::TuneOptions o;
        o.models = split_list(a->models);
        SS_RETURN_IF_ERROR(parse_ints("--square", a->square, &o.square));
        SS_RETURN_IF_ERROR(parse_ints("--M", a->Ms, &o.Ms));
        std::vector<int64_t> sk;
        SS_RETURN_IF_ERROR(parse_ints("--split-k", a->split_k, &sk));
        o.split_k.assign(sk.begin(), sk.end());
        o.precisions = split_list(a->dtypes);
        o.patterns = split_list(a->patterns);
        o.reps = a->reps;
        o.out = a->out;
        if (o.reps < 1) return invalid_argument("--reps must be >= 1");
        return cuda::run_tune(o);
#else
        return unsupported("tune needs the CUDA backend (this build has none)");
#endif
      };
    });

}  // namespace
}  // namespace slidesparse::cli
