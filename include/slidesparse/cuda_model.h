// The CUDA engine: Llama / Qwen2 on the GPU with bf16 or fp16 activations. Every linear is a
// GpuLinear (dense cuBLASLt or slided n:m on cuSPARSELt, bf16/fp16/int8/fp8, or auto); q|k|v and
// gate|up are fused into one layer each. KV cache of max_batch slots x max_ctx positions; batched
// prefill (S sequences of L tokens) and batched decode (one token per sequence, replayed from
// CUDA graphs). No CUDA types here; implemented in src/cuda/engine (SLIDESPARSE_WITH_CUDA).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/linear.h"
#include "slidesparse/model.h"
#include "slidesparse/model_config.h"
#include "slidesparse/pattern.h"
#include "slidesparse/quant.h"
#include "slidesparse/status.h"

namespace slidesparse {

struct CudaModelOptions {
  DType act_dtype = DType::kBF16;            // BF16 | F16: activations, KV cache, 16-bit weights
  LinearMode mode = LinearMode::kSparse;     // n:m linears: dense (zeros in place) | sparse | auto
  QuantMode dense_quant = QuantMode::kNone;  // plain HF checkpoint, no sparsify: W16A16 or W8A8
  SparsifyOptions sparsify;                  // plain HF checkpoint pruned at load (as convert)
  std::string tuning_path;                   // `slidesparse tune` JSON (optional)
  // GEMMs of the int8 / fp8 linears (linear.h): kBest = cuBLASLt / cuSPARSELt below M = 512,
  // CUTLASS with the fused dequant epilogue from 512 (bf16 activations on sm_90; elsewhere the
  // library), at the cost of a second copy of each sparse weight; kLibrary / kCutlass: one;
  // kDefault: the SLIDESPARSE_{DENSE,SPARSE}_BACKEND variables. bf16 / fp16 linears: the library.
  GemmBackend gemm_backend = GemmBackend::kBest;
  int64_t max_batch = 1;        // KV cache slots (sequences)
  int64_t max_ctx = 0;          // positions per slot; 0: min(model maximum, 4096)
  int64_t max_step_tokens = 0;  // largest M of one forward; 0: max_batch * max_ctx (capped 65536)
  bool cuda_graphs = true;      // decode steps replay a captured graph per batch size
  bool profile = false;         // per-op GPU time (CUDA events around every op; disables graphs)
};

// Synthetic weights for benchmarks (no file): the shapes of a synth arch, random values like
// `synth`, pruned/quantized as `convert` would store them (pattern "dense" for a dense model).
struct SyntheticModelSpec {
  std::string arch;             // synth_arch_names(): "qwen2.5-7b", ...
  std::string pattern = "6:8";  // "dense" or an n:m pattern
  QuantMode quant = QuantMode::kInt8;
  uint64_t seed = 0;
  // Draw the weights of one layer and give every layer its own device copy of them: a GEMM's
  // speed does not depend on the values, and a 7B model then loads in seconds instead of a
  // minute of host-side drawing. false: every layer drawn separately (synth's per-name streams).
  bool repeat_layers = true;
};

struct OpTime {
  std::string op;  // "embedding", "rmsnorm", "qkv", "rope_kv", "attention", "o", "gate_up", ...
  double ms = 0;   // total over the calls since reset_profile()
  int64_t calls = 0;
};

class CudaModel {
 public:
  virtual ~CudaModel() = default;
  // A SlideSparse or plain Hugging Face checkpoint directory. Errors (one line): unknown
  // architecture, no usable GPU (pre-sm80), weights + cache larger than free GPU memory.
  static Expected<std::unique_ptr<CudaModel>> load(const std::string& path,
                                                   const CudaModelOptions& opt);
  static Expected<std::unique_ptr<CudaModel>> synthetic(const SyntheticModelSpec& spec,
                                                        const CudaModelOptions& opt);

  virtual const ModelConfig& config() const = 0;
  virtual std::string description() const = 0;  // "SlideSparse 6:8 int8, sparse, bf16" ...
  // Empty when every sparse GEMM of the model has a tuning entry (CudaModelOptions::tuning_path,
  // nearest M bucket) at a decode (M = 1) and a prefill (M = min(max_step_tokens, 16384)) size;
  // else one line naming the untuned ones (precision, pattern, backend and M). Untuned, they run
  // cuSPARSELt's heuristic algorithm or CUTLASS's default configuration: 2.1-2.3x slower for bf16
  // 2:4 / 6:8 on the H100, up to 1.8x for 4:6 / 8:10 at M = 2048 (docs/e2e.md, "Tuning matters").
  // `generate` prints it to stderr, `bench e2e` as a "# note" line.
  virtual std::string tuning_note() const = 0;
  virtual int64_t max_batch() const = 0;
  virtual int64_t max_ctx() const = 0;

  // Prefill: S sequences of L tokens (tokens [S*L], sequence s in slot s, which is reset and
  // then holds positions 0..L-1). logits: host [S, vocab] fp32 of each sequence's last token,
  // or null; next: host [S] greedy ids of those rows (device argmax, lowest id on ties) or null.
  // Errors: S > max_batch, L > max_ctx, S*L > max_step_tokens, ids out of range.
  virtual Status prefill(const int32_t* tokens, int64_t S, int64_t L, float* logits,
                         int32_t* next = nullptr) = 0;
  // Prefill of one sequence (slot 0) with the logits of every position: host [L, vocab] fp32, row
  // i = the logits after tokens 0..i (row i of a full forward; what prefill of tokens[0..i] gives
  // up to GEMM rounding order). Same errors as prefill(tokens, 1, L, ...).
  virtual Status prefill_all_logits(const int32_t* tokens, int64_t L, float* logits) = 0;
  // Decode: token b appended to slot b (b = 0..B-1) at position cache_len(b). logits: host
  // [B, vocab] fp32 or null; next: host [B] greedy (argmax, lowest id on ties) ids or null.
  // Errors: B > max_batch, a slot full (cache_len == max_ctx), ids out of range.
  virtual Status decode(const int32_t* tokens, int64_t B, float* logits, int32_t* next) = 0;
  virtual int64_t cache_len(int64_t slot) const = 0;

  virtual size_t weight_bytes() const = 0;       // device bytes of all weights
  virtual size_t peak_memory_bytes() const = 0;  // device bytes in use at the peak (cudaMemGetInfo)
  virtual std::vector<OpTime> profile() const = 0;
  virtual void reset_profile() = 0;
  virtual Status synchronize() = 0;
};

}  // namespace slidesparse
