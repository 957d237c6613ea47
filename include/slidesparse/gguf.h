// GGUF files (llama.cpp's single-file model format): a bounds-checked reader of the header,
// metadata and tensor infos, dequantization of F32/F16/BF16/Q4_0/Q4_1/Q8_0 tensors to fp32, and
// the Llama model of a GGUF file in Hugging Face form (config, tensor names, q/k rows un-permuted).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/model_config.h"
#include "slidesparse/status.h"

namespace slidesparse {

// One metadata value. Arrays hold their elements (strings in `strs`, numbers in `nums`).
struct GgufValue {
  enum class Kind { kNumber, kBool, kString, kArray } kind = Kind::kNumber;
  double num = 0;  // numbers and bools (exact for integers below 2^53)
  std::string str;
  std::vector<std::string> strs;
  std::vector<double> nums;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the contiguous dimension
  uint32_t type = 0;        // ggml type id (0 F32, 1 F16, 2 Q4_0, 3 Q4_1, 8 Q8_0, 30 BF16)
  size_t offset = 0;        // absolute file offset
  size_t nbytes = 0;
  int64_t numel() const;
};

class GgufFile {
 public:
  // Reads and validates the whole header (magic, version 2/3, counts, every string/array length,
  // tensor dims/types/offsets within the file). The data is read on demand.
  static Expected<GgufFile> open(const std::string& path);
  const std::string& path() const { return path_; }
  const std::map<std::string, GgufValue>& metadata() const { return meta_; }
  const GgufValue* find(const std::string& key) const;
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* tensor(const std::string& name) const;
  // Dequantized fp32 values of a tensor in its row-major form [ne[n-1], ..., ne[0]].
  Expected<std::vector<float>> read_f32(const std::string& name) const;

 private:
  std::string path_;
  size_t file_size_ = 0;
  std::map<std::string, GgufValue> meta_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> index_;
};

// Dequantize `count` elements of ggml type `type` from `src` (count % block size == 0 checked by
// the caller). Returns kUnsupported for other types.
Status gguf_dequantize(uint32_t type, const uint8_t* src, int64_t count, float* dst);
const char* gguf_type_name(uint32_t type);

// The model config of a GGUF file of architecture "llama" (others: kUnsupported).
Expected<ModelConfig> gguf_model_config(const GgufFile& f);
// HF tensor name -> fp32 tensor in HF layout (q_proj/k_proj rows un-permuted from llama.cpp's
// rotary layout). Missing lm_head when the embeddings are tied.
Expected<std::vector<float>> gguf_read_hf_tensor(const GgufFile& f, const ModelConfig& c,
                                                 const std::string& hf_name);

}  // namespace slidesparse

#include "slidesparse/checkpoint.h"

namespace slidesparse {

// `convert` input from a GGUF file: HF tensor names and layout, every tensor dequantized and
// rounded to bf16 (the converted checkpoint is a bf16 HF-layout safetensors model; rounding the
// Q4_1 values to bf16 is not exact). config.json and a tokenizer.json (vocab, merges, special
// tokens, digit splitting) are generated into a temporary directory owned by the source.
Expected<std::unique_ptr<WeightSource>> open_gguf_source(const std::string& path);

}  // namespace slidesparse
