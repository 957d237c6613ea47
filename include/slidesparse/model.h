// The Llama / Qwen2 model of the engine (fp32 activations): embeddings (tied or not), RMSNorm,
// RoPE (theta, Llama-3 scaling), GQA causal attention with a KV cache, SwiGLU MLP, final norm,
// lm_head. Weights come from a GGUF file, a Hugging Face directory or a SlideSparse directory; the
// linears are dense fp32 or SlideSparse n:m (stored in the checkpoint, or pruned at load time).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/backend.h"
#include "slidesparse/model_config.h"
#include "slidesparse/pattern.h"
#include "slidesparse/prune.h"
#include "slidesparse/quant.h"
#include "slidesparse/status.h"

namespace slidesparse {

// Prune (and quantize) the dense linears of a GGUF / HF model at load time, exactly as convert
// does (nm_compress; values of quant none rounded to bf16).
struct SparsifyOptions {
  bool enabled = false;
  Pattern pattern{6, 8};
  PruneMethod prune = PruneMethod::kMagnitude;
  QuantMode quant = QuantMode::kNone;
  std::map<std::string, std::vector<float>> act_norms;  // Wanda: per linear name, [K]
};

class Model {
 public:
  static Expected<std::unique_ptr<Model>> load(const std::string& path, Backend* backend,
                                               const SparsifyOptions& sp = {});
  const ModelConfig& config() const { return cfg_; }
  const std::string& description() const { return desc_; }  // "GGUF dense f32", "6:8 int8" ...

  void reset() { cache_len_ = 0; }
  int64_t cache_len() const { return cache_len_; }
  // Runs n tokens at positions cache_len()..cache_len()+n-1 and appends them to the KV cache.
  // logits: [n, vocab] (or null). Errors: ids out of range, context past the model's maximum.
  Status forward(const int32_t* tokens, int64_t n, float* logits);

  // Wanda calibration: while enabled, accumulates the sum of squares of every linear's input
  // channels; act_norms() returns sqrt of the sums per linear name.
  void set_collect_act_norms(bool on) { collect_ = on; }
  std::map<std::string, std::vector<float>> act_norms() const;

 private:
  struct Layer {
    std::vector<float> attn_norm, mlp_norm;
    std::unique_ptr<Linear> q, k, v, o, gate, up, down;
    std::vector<float> kc, vc;  // [max_ctx, KV*hd]
  };
  void collect(const std::string& name, const float* x, int64_t M, int64_t K);

  ModelConfig cfg_;
  std::string desc_;
  Backend* be_ = nullptr;
  std::vector<float> embed_, final_norm_, inv_freq_;
  std::unique_ptr<Linear> lm_head_;
  std::vector<Layer> layers_;
  std::vector<std::string> linear_names_;  // model_linears order
  int64_t cache_len_ = 0, cache_cap_ = 0;
  bool collect_ = false;
  std::map<std::string, std::vector<double>> sumsq_;
};

// Inverse RoPE frequencies [head_dim / 2] of a config (theta, Llama-3 scaling): HF's formula.
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace slidesparse
