// SlideSparse checkpoints (DESIGN.md "SlideSparse checkpoint"): convert a Hugging Face checkpoint,
// load one back (per linear: an NmTensor, or the dense weight of a plain checkpoint), inspect it.
//
// On disk (a directory):
//   config.json, generation_config.json, tokenizer files   copied from the source
//   slidesparse_config.json   {"format_version": 1, "pattern": "6:8", "prune": "magnitude"|"wanda",
//                              "quant": "none"|"int8"|"fp8", "layers": {P: {"shape": [N, K]}},
//                              "source": {...}}
//   model.safetensors (or HF shards + model.safetensors.index.json); per pruned linear P:
//     P.nm_values    [N, (K_pad/m)*n]  BF16/F16 (quant none, the model dtype), I8 or F8_E4M3
//     P.nm_mask      [N, K_pad/m]      U8 (m <= 8) or U16; bit i = position i of the block kept
//     P.weight_scale [N]               F32, quantized only
//     P.bias         unchanged; every other tensor (embeddings, norms, lm_head) unchanged.
//
// Wanda norms file (--norms): a safetensors file with one F32 [K] tensor per linear, named
// "<P>.weight.act_norm" (e.g. "model.layers.0.mlp.up_proj.weight.act_norm"): the L2 norm of input
// channel k over the calibration tokens. "<P>.act_norm" is accepted too.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/model_config.h"
#include "slidesparse/nm_tensor.h"
#include "slidesparse/pattern.h"
#include "slidesparse/prune.h"
#include "slidesparse/quant.h"
#include "slidesparse/safetensors.h"
#include "slidesparse/status.h"
#include "slidesparse/tensor.h"

namespace slidesparse {

// ---- weight sources
// ------------------------------------------------------------------------------

// A tensor read from a source: a view plus whatever keeps its memory alive (nothing for a view into
// an mmap'd safetensors file; an owned buffer for e.g. a dequantized GGUF tensor).
struct SourceTensor {
  TensorView view;
  std::shared_ptr<const void> hold;
};

// Where convert reads a model from. A Hugging Face safetensors directory today; a GGUF file can
// implement the same interface (tensor names and layout in HF form).
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual std::string description() const = 0;  // for messages: the path
  virtual const ModelConfig& config() const = 0;
  virtual std::string config_json() const = 0;  // config.json text written to the output
  // Files copied verbatim into the output (generation_config.json, tokenizer files), full paths.
  virtual std::vector<std::string> aux_files() const = 0;
  // Paths an output must neither equal nor lie inside nor contain.
  virtual std::vector<std::string> input_paths() const = 0;
  virtual std::vector<TensorInfo> tensors() const = 0;  // in checkpoint order
  virtual Expected<SourceTensor> read(const std::string& name) const = 0;
  // Called when convert is done with (part of) a tensor: an mmap'd source may drop its pages;
  // views stay valid (pages are re-read on access). May be called several times per tensor.
  virtual void release(const std::string& name) const {}
};

// A Hugging Face directory (config.json + model.safetensors or shards).
Expected<std::unique_ptr<WeightSource>> open_hf_source(const std::string& dir);

// ---- convert
// -------------------------------------------------------------------------------------

struct ConvertOptions {
  std::string out;
  Pattern pattern{6, 8};
  PruneMethod prune = PruneMethod::kMagnitude;
  QuantMode quant = QuantMode::kNone;
  // Wanda: per linear name P, the [K] input-channel L2 norms (from load_act_norms or computed in
  // process by calibration). Must hold every linear when prune == kWanda.
  std::map<std::string, std::vector<float>> act_norms;
  std::string export_dense_pruned;  // also write a plain HF checkpoint with the zeros in place
  bool force = false;
  int threads = 0;  // 0: all cores
  size_t max_shard_bytes = kDefaultMaxShardBytes;
  bool progress = false;                           // progress line on stderr
  std::map<std::string, std::string> source_info;  // extra keys for slidesparse_config "source"
};

struct ConvertReport {
  int64_t tensors = 0, linears = 0;
  size_t bytes_read = 0, bytes_written = 0;
  // Pruned linears only; dense = N*K elements of the stored value dtype (bf16/f16, int8, fp8).
  size_t linear_dense_bytes = 0, linear_sparse_bytes = 0;
  double seconds = 0;
};

// Reads the norms file format described at the top of this header, checked against `linears`
// (every linear present, F32, shape [K], finite and >= 0).
Expected<std::map<std::string, std::vector<float>>> load_act_norms(
    const std::string& path, const std::vector<LinearSpec>& linears);

// Streams `src` tensor by tensor into opt.out (temp sibling, renamed at the end; also
// opt.export_dense_pruned). Memory: about the largest linear in fp32 plus its outputs.
// Linear weights must be BF16 or F16. --export-dense-pruned writes each linear as P.weight in the
// model dtype: the pruned weight, and when quantized the dequantized value q*scale (fp32) rounded
// to the model dtype (so it is not bit-identical to what the int8/fp8 GEMM computes with).
Status convert_checkpoint(const WeightSource& src, const ConvertOptions& opt,
                          ConvertReport* report = nullptr);

// ---- load
// ----------------------------------------------------------------------------------------

// A converted (or plain HF) checkpoint directory, opened for reading (mmap; nothing is copied until
// asked). Thread-safe for concurrent reads.
class Checkpoint {
 public:
  static Expected<Checkpoint> open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const std::vector<LinearSpec>& linears() const { return linears_; }
  // True for a SlideSparse checkpoint (slidesparse_config.json present).
  bool is_slidesparse() const { return slidesparse_; }
  Pattern pattern() const { return pattern_; }
  PruneMethod prune() const { return prune_; }
  QuantMode quant() const { return quant_; }

  // SlideSparse checkpoint: the compact tensor of linear P (shapes, dtypes, masks verified).
  Expected<NmTensor> nm_linear(const std::string& P) const;
  // Dense [N, K] fp32 weight of linear P: the stored weight (plain checkpoint) or the dequantized
  // reconstruction nm_to_dense_f32 (SlideSparse).
  Expected<std::vector<float>> dense_linear_f32(const std::string& P) const;
  // Any stored tensor (bias, embeddings, norms, lm_head ...) as a view into the mapping, or fp32.
  Expected<TensorView> view(const std::string& name) const { return store_.view(name); }
  // The same, required to have exactly `shape` (the message names the checkpoint and both).
  Expected<TensorView> view(const std::string& name, const Shape& shape) const;
  Expected<std::vector<float>> tensor_f32(const std::string& name) const;
  // A stored float tensor that must have exactly `shape` (embedding, norms, biases, lm_head, a
  // plain checkpoint's linear weights), as fp32. Same element count but another shape (a
  // transposed weight) is an error.
  Expected<std::vector<float>> tensor_f32(const std::string& name, const Shape& shape) const;
  bool has(const std::string& name) const { return store_.has(name); }
  const TensorStore& store() const { return store_; }

 private:
  std::string dir_;
  ModelConfig config_;
  std::vector<LinearSpec> linears_;
  TensorStore store_;
  bool slidesparse_ = false;
  Pattern pattern_;
  PruneMethod prune_ = PruneMethod::kMagnitude;
  QuantMode quant_ = QuantMode::kNone;
};

// ---- inspect
// -------------------------------------------------------------------------------------

struct InspectLinear {
  std::string name;
  int64_t N = 0, K = 0, K_pad = 0;
  std::string dtype;     // value dtype (SlideSparse) or weight dtype
  bool verified = true;  // masks popcount == n, padding zero, values in range, pattern holds
  std::string problem;   // why not verified
  int64_t nonzeros = 0;
  double sparsity = 0;     // 1 - nonzeros / (N*K)
  size_t bytes = 0;        // values + masks + scales (or the dense weight)
  size_t dense_bytes = 0;  // N*K elements of the same dtype: 6:8 bf16 ~0.81, 6:8 int8 ~0.88
};

struct InspectReport {
  std::string dir;
  bool slidesparse = false;
  std::string arch, pattern, prune, quant;
  std::vector<InspectLinear> linears;
  int64_t other_tensors = 0;
  size_t other_bytes = 0, file_bytes = 0;
  // Plain checkpoints: the patterns of {2:4, 4:6, 6:8, 8:10} every linear satisfies.
  std::vector<std::string> patterns_holding;
  size_t linear_bytes() const;
  size_t linear_dense_bytes() const;
  bool all_verified() const;
  std::string to_json() const;
  std::string to_text() const;
};

Expected<InspectReport> inspect_checkpoint(const std::string& dir, int threads = 0);

}  // namespace slidesparse
