// Flags of the commands that can run on the CUDA engine (`generate`, `eval logits`):
// --device cpu|cuda and, for cuda, --dtype, --mode, --quant, --pattern, --prune, --tuning,
// --max-ctx, --gemm-backend, turned into CudaModelOptions; and the --tokens id list both commands
// take.
#pragma once

#include <CLI/CLI.hpp>
#include <climits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/linear.h"
#include "slidesparse/model.h"
#include "slidesparse/pattern.h"
#include "slidesparse/prune.h"
#include "slidesparse/quant.h"
#include "slidesparse/status.h"
#ifdef SLIDESPARSE_WITH_CUDA
#include "slidesparse/cuda_model.h"
#endif

namespace slidesparse::cli {

// "1,2,3" -> ids (each a non-negative int32).
inline Expected<std::vector<int32_t>> parse_token_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    // Decimal digits only (no sign, no spaces), at most 10 of them and <= INT32_MAX.
    if (item.empty() || item.size() > 10 || item.find_first_not_of("0123456789") != item.npos)
      return invalid_argument("--tokens: '" + item + "' is not a non-negative integer");
    const long long v = std::stoll(item);
    if (v > INT32_MAX)
      return invalid_argument("--tokens: " + item + " is too large (max " +
                              std::to_string(INT32_MAX) + ")");
    ids.push_back(static_cast<int32_t>(v));
  }
  if (ids.empty()) return invalid_argument("--tokens: no token ids");
  if (s.back() == ',') return invalid_argument("--tokens: trailing ','");
  return ids;
}

struct DeviceFlags {
  std::string device = "cpu", dtype = "bf16", mode = "sparse", quant = "none", pattern,
              prune = "magnitude", tuning, gemm_backend = "best";
  int64_t max_ctx = 0;
};

inline void add_device_flags(CLI::App& sub, DeviceFlags* f) {
  sub.add_option("--device", f->device, "cpu (default) | cuda");
  sub.add_option("--dtype", f->dtype, "cuda: activation dtype bf16 (default) | fp16");
  sub.add_option("--mode", f->mode,
                 "cuda: n:m linears on dense | sparse (default) | auto (tuning data decides)");
  sub.add_option("--quant", f->quant,
                 "cuda: none | int8 | fp8 for a plain HF model (W8A8 dense, or with --pattern)");
  sub.add_option("--pattern", f->pattern, "cuda: prune a plain HF model at load time to n:m");
  sub.add_option("--prune", f->prune, "cuda: magnitude (default) with --pattern");
  sub.add_option("--tuning", f->tuning, "cuda: `slidesparse tune` JSON for the GEMM choices");
  sub.add_option("--max-ctx", f->max_ctx, "cuda: KV cache positions (default: the run's need)");
  sub.add_option("--gemm-backend", f->gemm_backend,
                 "cuda: int8/fp8 GEMMs best (default) | library | cutlass | default");
}

// Checks the flags; an error if a cuda-only flag is set with --device cpu.
inline Status check_device_flags(const DeviceFlags& f) {
  if (f.device != "cpu" && f.device != "cuda")
    return invalid_argument("--device " + f.device + ": expected cpu or cuda");
  if (f.device == "cpu" &&
      (f.dtype != "bf16" || f.mode != "sparse" || f.quant != "none" || !f.pattern.empty() ||
       !f.tuning.empty() || f.max_ctx != 0 || f.gemm_backend != "best" || f.prune != "magnitude"))
    return invalid_argument(
        "--dtype/--mode/--quant/--pattern/--prune/--tuning/--max-ctx/--gemm-backend apply to "
        "--device cuda only");
#ifndef SLIDESPARSE_WITH_CUDA
  if (f.device == "cuda")
    return unsupported("--device cuda: this build has no CUDA backend (built without nvcc)");
#endif
  return Status::Ok();
}

#ifdef SLIDESPARSE_WITH_CUDA
inline Expected<CudaModelOptions> cuda_options(const DeviceFlags& f, int64_t max_ctx) {
  CudaModelOptions o;
  if (f.dtype == "bf16") {
    o.act_dtype = DType::kBF16;
  } else if (f.dtype == "fp16") {
    o.act_dtype = DType::kF16;
  } else {
    return invalid_argument("--dtype " + f.dtype + ": expected bf16 or fp16");
  }
  SS_ASSIGN_OR_RETURN(o.mode, linear_mode_parse(f.mode));
  SS_ASSIGN_OR_RETURN(QuantMode q, quant_mode_parse(f.quant));
  if (!f.pattern.empty()) {
    o.sparsify.enabled = true;
    SS_ASSIGN_OR_RETURN(o.sparsify.pattern, Pattern::parse(f.pattern));
    SS_ASSIGN_OR_RETURN(o.sparsify.prune, prune_method_parse(f.prune));
    if (o.sparsify.prune != PruneMethod::kMagnitude)
      return invalid_argument("--prune " + f.prune +
                              ": only magnitude at load time on cuda (convert --calib-text "
                              "writes a Wanda checkpoint)");
    o.sparsify.quant = q;
  } else {
    if (f.prune != "magnitude") return invalid_argument("--prune needs --pattern");
    o.dense_quant = q;
  }
  o.tuning_path = f.tuning;
  SS_ASSIGN_OR_RETURN(o.gemm_backend, gemm_backend_parse(f.gemm_backend));
  if (f.max_ctx < 0) return invalid_argument("--max-ctx must be >= 0");
  o.max_ctx = f.max_ctx > 0 ? f.max_ctx : max_ctx;
  o.max_batch = 1;
  return o;
}
#endif

}  // namespace slidesparse::cli
