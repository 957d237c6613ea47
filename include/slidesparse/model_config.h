// Model configuration of the Llama and Qwen2 families (Hugging Face config.json; SmolLM2 and
// Llama 3.x are Llama) and the tensor names of their checkpoints: which tensors are the linear
// projections that SlideSparse prunes (q, k, v, o, gate, up, down) and which stay untouched
// (embeddings, norms, lm_head, biases).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/safetensors.h"
#include "slidesparse/status.h"
#include "slidesparse/tensor.h"

namespace slidesparse {

enum class ModelArch { kLlama, kQwen2 };
const char* model_arch_name(ModelArch a);  // "LlamaForCausalLM", "Qwen2ForCausalLM"

// rope_scaling {"rope_type": "llama3", "factor", "low_freq_factor", "high_freq_factor",
// "original_max_position_embeddings"}; absent/null -> kind "none".
struct RopeScaling {
  std::string kind = "none";  // "none" | "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  ModelArch arch = ModelArch::kLlama;
  int64_t hidden_size = 0;        // C
  int64_t intermediate_size = 0;  // MLP width
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;  // defaults to num_heads
  int64_t head_dim = 0;      // defaults to hidden_size / num_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;  // lm_head = embed_tokens when true (no lm_head tensor)
  bool qkv_bias = false;             // Qwen2: always; Llama: attention_bias (o_proj too)
  bool o_bias = false;               // Llama attention_bias also biases o_proj
  bool mlp_bias = false;             // Llama mlp_bias
  DType dtype = DType::kBF16;  // torch_dtype: bfloat16 -> BF16, float16 -> F16, float32 -> F32
  std::vector<int64_t> eos_token_ids;
  int64_t bos_token_id = -1;
};

// Parses config.json text / file. Unknown architecture, missing or non-positive sizes, or
// inconsistent heads (num_heads % num_kv_heads != 0) -> one error line naming the file and field.
Expected<ModelConfig> model_config_parse(const std::string& json_text,
                                         const std::string& origin = "config.json");
Expected<ModelConfig> model_config_load(const std::string& path);
// Sizes no supported model exceeds (so that a corrupt config is an error, not an allocation of
// petabytes): hidden <= 2^17, intermediate <= 2^20, layers, heads, head_dim <= 2^10,
// vocab <= 2^22, context <= 2^26. model_config_parse and the GGUF reader apply it.
Status model_config_check_sizes(const ModelConfig& c, const std::string& origin);
// config.json text for `c` (what synth writes; round-trips through model_config_parse).
std::string model_config_to_json(const ModelConfig& c);

enum class LinearKind { kQ, kK, kV, kO, kGate, kUp, kDown };
const char* linear_kind_name(LinearKind k);  // "q_proj", ...

// One pruned projection. `name` is the module prefix P ("model.layers.3.mlp.up_proj"); its
// tensors are P.weight [N, K] (and P.bias [N] when has_bias) in a Hugging Face checkpoint and
// P.nm_values / P.nm_mask / P.weight_scale in a SlideSparse checkpoint.
struct LinearSpec {
  std::string name;
  LinearKind kind = LinearKind::kQ;
  int64_t layer = 0;
  int64_t N = 0, K = 0;
  bool has_bias = false;
  std::string weight_name() const { return name + ".weight"; }
  std::string bias_name() const { return name + ".bias"; }
};

// Every linear of the model, layer by layer in q, k, v, o, gate, up, down order.
std::vector<LinearSpec> model_linears(const ModelConfig& c);
// Every tensor of a Hugging Face checkpoint of this config with its shape (dtype = c.dtype):
// embed, per layer input_layernorm, q/k/v/o (+bias), post_attention_layernorm, gate/up/down,
// final norm, lm_head unless tied. This is the order synth writes.
std::vector<TensorInfo> model_tensors(const ModelConfig& c);

// Index of the first name of a layer the config does not have (`prefix` + i + "." with i >=
// num_hidden_layers; prefix "model.layers." for HF names, "blk." for GGUF), or -1. A checkpoint
// with more layers than its config.json says would otherwise load and run its first layers only.
int64_t first_extra_layer_name(const std::vector<std::string>& names, const ModelConfig& c,
                               const std::string& prefix = "model.layers.");
// If `tensor` is P.weight of a linear, returns that linear's index in model_linears(), else -1.
int64_t linear_index_of_weight(const std::vector<LinearSpec>& linears, const std::string& tensor);

}  // namespace slidesparse
