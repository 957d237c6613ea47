// GPU linear layers: y = x * W^T (+ bias) with W8A8 (int8 / fp8 e4m3) or W16A16 (bf16 / fp16)
// weights, dense (cuBLASLt) or slided n:m on 2:4 sparse tensor cores (cuSPARSELt), and an `auto`
// layer that picks one of the two per M bucket from tuning data. No CUDA types here: device
// pointers are void*, streams are void* (a cudaStream_t; nullptr = the default stream).
// x: device [M, K] in the activation dtype; y: device [M, N] in the activation dtype.
// Implemented in src/cuda: link against slidesparse_cuda (builds with SLIDESPARSE_WITH_CUDA).
// Without a usable GPU (none, pre-sm80) or cuSPARSELt the factories return kUnsupported.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "slidesparse/dtype.h"
#include "slidesparse/nm_tensor.h"
#include "slidesparse/pattern.h"
#include "slidesparse/quant.h"
#include "slidesparse/status.h"
#include "slidesparse/tensor.h"

namespace slidesparse {

enum class LinearMode { kDense, kSparse, kAuto };
Expected<LinearMode> linear_mode_parse(std::string_view s);  // "dense" | "sparse" | "auto"
const char* linear_mode_name(LinearMode m);

// "bf16", "fp16", "int8", "fp8": the GEMM precision of a layer.
std::string precision_name(DType act, QuantMode q);

// Offline tuning results (`slidesparse tune`), keyed by backend, precision, pattern ("dense" for
// cuBLASLt), N, K and M bucket (the next power of two >= M, at most 65536).
struct TuneEntry {
  std::string backend;  // "cusparselt" | "cublaslt"
  std::string precision;
  std::string pattern;  // "dense", "2:4", "6:8", ...
  int64_t N = 0, K = 0, M_bucket = 0;
  int alg_id = -1, split_k = 1, split_k_mode = 0, split_k_buffers = 0;  // cuSPARSELt
  int algo_index = -1;                                                  // cuBLASLt candidate
  double us = 0;        // measured GEMM time at M = M_bucket (CUTLASS: with its fused epilogue)
  double layer_us = 0;  // prologue + this GEMM + epilogue at M = M_bucket (0: not measured)
};

class TuningTable {
 public:
  static Expected<TuningTable> load(const std::string& path);
  Status save(const std::string& path) const;
  void put(const TuneEntry& e);  // replaces an entry with the same key
  const TuneEntry* find(const std::string& backend, const std::string& precision,
                        const std::string& pattern, int64_t N, int64_t K, int64_t M) const;
  // Same key, the tuned bucket nearest to bucket(M) in log scale (ties: the larger); null if the
  // shape was never tuned. Used to pick GEMM algorithms for untuned buckets.
  const TuneEntry* find_nearest(const std::string& backend, const std::string& precision,
                                const std::string& pattern, int64_t N, int64_t K, int64_t M) const;
  static int64_t bucket(int64_t M);
  // The `auto` rule: true iff both layers have a tuned bucket within a factor of 2 of bucket(M)
  // (the nearest one is used) and the sparse layer (full layer time when measured, else GEMM
  // time) beats 0.95x the dense one (a 5 % margin). Otherwise dense. The entries compared are
  // those of the backends the two layers run at this M ("cutlass" where GemmBackend::kBest runs
  // CUTLASS, M >= kCutlassMinM).
  bool prefer_sparse(const std::string& precision, const std::string& pattern, int64_t N, int64_t K,
                     int64_t M, const char* sparse_backend = "cusparselt",
                     const char* dense_backend = "cublaslt") const;
  std::string gpu;
  std::vector<TuneEntry> entries;
};

// Which library runs a layer's GEMM. kLibrary: cuBLASLt (dense) / cuSPARSELt (sparse).
// kCutlass: the CUTLASS sm90a kernels (int8 / fp8 only, H100-class GPUs, builds with
// -DSLIDESPARSE_CUTLASS=ON); with bf16 activations forward() runs the dequant + bias inside the
// GEMM's epilogue instead of a separate kernel. kBest: both, picked per M — CUTLASS for
// M >= kCutlassMinM (its fused epilogue wins there), the library below (CUTLASS's 128-token tiles
// leave most SMs idle at decode sizes); a dense layer keeps one weight for both GEMMs, a sparse
// layer holds both compressed weights (the two libraries' formats differ). kBest applies to
// int8 / fp8 layers with bf16 activations on a GPU the CUTLASS kernels run on; elsewhere it is
// kLibrary. kDefault: the environment variable SLIDESPARSE_SPARSE_BACKEND (sparse layers) /
// SLIDESPARSE_DENSE_BACKEND (dense layers), each "best", "cutlass" or "library" (also
// "cusparselt" / "cublaslt"); unset: kLibrary. The variables move only int8 / fp8 layers (a
// model's bf16 / fp16 layers stay on the library); an explicit kCutlass on a bf16 / fp16 layer
// is kUnsupported.
enum class GemmBackend { kDefault, kLibrary, kCutlass, kBest };
// The backend a layer built with `b` runs (kLibrary, kCutlass or kBest): kDefault read from the
// environment variable of a dense / sparse layer, kBest reduced to kLibrary where it does not
// apply. Errors: an unparsable variable.
Expected<GemmBackend> effective_gemm_backend(GemmBackend b, bool sparse, QuantMode q, DType act);
// Smallest M that kBest runs on CUTLASS (H100, Qwen2.5-7B int8 decode, tokens/s CUTLASS /
// library: dense 0.92x at B = 256, 1.22x at B = 512; 2:4 1.04x / 1.24x; 6:8 0.95x / 1.21x).
inline constexpr int64_t kCutlassMinM = 512;
Expected<GemmBackend> gemm_backend_parse(std::string_view s);
const char* gemm_backend_name(GemmBackend b);  // "default", "library", "cutlass", "best"

// Forward scratch (quantized/lifted operand, scales, accumulators, cuBLASLt workspace) that
// several layers share when they run one after another on one stream, as an engine's layers do:
// one copy for the largest layer instead of one per layer. Opaque; buffers only grow, and an
// input_slot() pointer stays valid until a reserve grows them.
struct LinearScratch;
std::shared_ptr<LinearScratch> make_linear_scratch();

struct LinearConfig {
  DType act_dtype = DType::kBF16;          // BF16 or F16: the model's dtype (x and y)
  const TuningTable* tuning = nullptr;     // optional; must outlive the layer
  void* stream = nullptr;                  // used by prepare (uploads, slide build, compression)
  std::shared_ptr<LinearScratch> scratch;  // null: the layer has its own
  GemmBackend sparse_backend = GemmBackend::kDefault;
  GemmBackend dense_backend = GemmBackend::kDefault;
};

// Where a layer's prologue writes its activation operand, so that the op before the layer
// (RMSNorm, SwiGLU) can write it directly instead of a bf16/fp16 x: codes [M_pad, K_out] in
// `dtype` (int8 / e4m3 codes for W8A8, the activation dtype for sparse W16A16), gathered through
// the slide of `lift` when `lifted` (else a plain quantize, columns >= K zero), per-token scales
// [M_pad] (W8A8 only, else null); rows >= M zero. Dense W16A16 has no prologue: codes == null.
struct InputSlot {
  void* codes = nullptr;
  float* scales = nullptr;
  int64_t M_pad = 0, K_out = 0;
  DType dtype = DType::kBF16;
  QuantMode quant = QuantMode::kNone;
  bool lifted = false;
  Pattern lift{2, 4};
};

class GpuLinear {
 public:
  virtual ~GpuLinear() = default;
  int64_t N() const { return N_; }
  int64_t K() const { return K_; }
  QuantMode quant() const { return q_; }
  virtual std::string describe() const = 0;
  // Grows the activation/accumulator buffers to hold M tokens (forward does it on demand).
  virtual Status reserve(int64_t max_M) = 0;
  // y = x * W^T (+ bias). Asynchronous on `stream`; x and y must not overlap.
  virtual Status forward(const void* x, void* y, int64_t M, void* stream) = 0;

  // The three stages of forward, for profiling: prologue (quantize / lift of x), GEMM into the
  // internal accumulator buffer, epilogue (dequant + bias into y).
  virtual Status run_prologue(const void* x, int64_t M, void* stream) = 0;
  virtual Status run_gemm(int64_t M, void* stream) = 0;
  virtual Status run_epilogue(void* y, int64_t M, void* stream) = 0;

  // Fused prologues: input_slot(M) reserves for M tokens and says where the operand of the
  // layer forward(M) would use goes; forward_prepared(y, M) is forward minus the prologue (the
  // slot must hold the operand of these M tokens). Dense W16A16: codes == null, and
  // forward_prepared is kUnsupported (call forward).
  virtual Expected<InputSlot> input_slot(int64_t M) = 0;
  virtual Status forward_prepared(void* y, int64_t M, void* stream) = 0;
  // Residual forms of forward / forward_prepared: res[M, N] = T(res + T(y)) for the y that
  // forward would write — a sublayer's residual add done by the layer's epilogue (the fused
  // CUTLASS epilogue or the dequant kernel) instead of a y buffer and a separate add; bit-identical
  // to forward followed by that add. W8A8 layers only (fuses_residual()); else kUnsupported.
  // forward_residual = run_prologue + forward_prepared_residual.
  virtual bool fuses_residual() const { return false; }
  Status forward_residual(const void* x, void* res, int64_t M, void* stream);
  virtual Status forward_prepared_residual(void* res, int64_t M, void* stream);
  // After run_gemm (or forward with a bias or padding): host copy of the accumulators [M, N]
  // (I32 for int8, F32 for fp8, the activation dtype for bf16/fp16). Synchronizes the stream.
  virtual Status copy_accumulators(int64_t M, void* host, void* stream) = 0;
  // Device weight [N, K] in the activation dtype, rows unpadded, when this is a dense W16A16
  // layer stored exactly so (a tied embedding table can share it); else null.
  virtual const void* dense_weight() const { return nullptr; }

  // Tuning hooks (`slidesparse tune`, `bench kernel`). gemm_configs: how many explicit GEMM
  // configurations exist for this M (cuSPARSELt: ALG_CONFIG_MAX_ID + 1; cuBLASLt: heuristic
  // candidates, at most 16). config(i, split_k) describes configuration i as a TuneEntry (key
  // fields filled). run_gemm_config runs the GEMM with `e`'s algorithm (null: library heuristic).
  // search_gemm runs cusparseLtMatmulSearch (sparse only) and returns what it chose.
  virtual Expected<int> gemm_configs(int64_t M) = 0;
  virtual TuneEntry config(int64_t M, int index, int split_k) const = 0;
  virtual Status run_gemm_config(int64_t M, const TuneEntry* e, void* stream) = 0;
  virtual Expected<TuneEntry> search_gemm(int64_t M, void* stream) = 0;

 protected:
  int64_t N_ = 0, K_ = 0;
  QuantMode q_ = QuantMode::kNone;
};

// Dense cuBLASLt layer. w: host fp32 [N, K]; quantized per output channel when q != none
// (DESIGN.md rule), else converted to the activation dtype. bias: host fp32 [N] or null.
Expected<std::unique_ptr<GpuLinear>> make_dense_linear(const float* w, int64_t N, int64_t K,
                                                       QuantMode q, const float* bias,
                                                       const LinearConfig& cfg);
// A dense weight in the GEMM's input dtype: int8 / e4m3 codes with per-channel scales [N] (the
// DESIGN.md rule) when q != none, else the activation dtype (scales empty).
struct DenseWeightCodes {
  DType dtype = DType::kBF16;
  int64_t N = 0, K = 0;
  QuantMode quant = QuantMode::kNone;
  std::vector<uint8_t> codes;  // [N, K]
  std::vector<float> scales;   // [N] or empty
};
// Host conversion of fp32 [N, K] (all cores); make_dense_linear(w, ...) is this + the one below.
Expected<DenseWeightCodes> dense_weight_codes(const float* w, int64_t N, int64_t K, QuantMode q,
                                              DType act_dtype);
// The same from stored float tensors (F32/F16/BF16/F8_E4M3 [n_i, K], e.g. a checkpoint's q, k, v
// views): their rows one after another, converted per row block on all cores with no fp32 copy
// of the whole weight; the codes equal dense_weight_codes of their fp32 concatenation.
Expected<DenseWeightCodes> dense_weight_codes(const std::vector<TensorView>& parts, int64_t K,
                                              QuantMode q, DType act_dtype);
// Dense layer from converted weights (loading many layers with the same weights converts once).
Expected<std::unique_ptr<GpuLinear>> make_dense_linear(const DenseWeightCodes& w, const float* bias,
                                                       const LinearConfig& cfg);
// Dense layer holding exactly the weights of an NmTensor (codes + scales, zeros in place).
Expected<std::unique_ptr<GpuLinear>> make_dense_linear(const NmTensor& w, const float* bias,
                                                       const LinearConfig& cfg);
// Slided n:m layer on cuSPARSELt: the slided operand is built on the GPU from the compact tensor
// and compressed once. value dtype BF16/F16 must equal cfg.act_dtype.
Expected<std::unique_ptr<GpuLinear>> make_sparse_linear(const NmTensor& w, const float* bias,
                                                        const LinearConfig& cfg);
// Both layers; forward uses the sparse one for an M bucket only when the tuning table (nearest
// tuned bucket of the shape) says its GEMM is faster than the dense one there (no data: dense).
Expected<std::unique_ptr<GpuLinear>> make_auto_linear(const NmTensor& w, const float* bias,
                                                      const LinearConfig& cfg);
Expected<std::unique_ptr<GpuLinear>> make_linear(LinearMode mode, const NmTensor& w,
                                                 const float* bias, const LinearConfig& cfg);

}  // namespace slidesparse
