// Random-weight Hugging Face checkpoints with the real shapes of a few models (no download):
// bf16 weights ~ N(0, 0.02), norm weights 1, biases ~ N(0, 0.02); config.json and
// generation_config.json. Streamed to disk in chunks: memory stays a few hundred MB for any size.
// Deterministic: a tensor's values depend only on (seed, tensor name), not on threads or order.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "slidesparse/model_config.h"
#include "slidesparse/safetensors.h"
#include "slidesparse/status.h"

namespace slidesparse {

// "tiny-llama", "tiny-qwen2", "llama3.2-1b", "llama3.2-3b", "qwen2.5-7b", "qwen2.5-14b".
// tiny-llama: hidden 64, intermediate 172 (K of down_proj not a multiple of 6, 8 or 10), 2 layers,
// 4 heads / 2 kv heads, vocab 256, tied embeddings, llama3 rope scaling.
// tiny-qwen2: hidden 80, intermediate 216, 2 layers, 5 heads / 1 kv head, vocab 300, qkv bias,
// untied lm_head.
std::vector<std::string> synth_arch_names();
Expected<ModelConfig> synth_arch_config(const std::string& arch);

struct SynthOptions {
  std::string arch;
  std::string out;
  uint64_t seed = 0;
  bool force = false;
  int threads = 0;  // 0: all cores
  size_t max_shard_bytes = kDefaultMaxShardBytes;
  bool progress = false;     // one progress line per tensor on stderr
  bool config_only = false;  // config.json + generation_config.json only (no weights): for tools
                             // that build the model themselves (HF random init, bench/hf_e2e.py)
};

// Writes the checkpoint into a temp sibling of opt.out and renames it at the end.
Status synth_checkpoint(const SynthOptions& opt);

// The generator synth uses, exposed for tests: count bf16 values of N(0, stddev) for `name`.
void synth_fill_bf16(uint64_t seed, const std::string& name, int64_t first, int64_t count,
                     float stddev, uint16_t* out);

}  // namespace slidesparse
