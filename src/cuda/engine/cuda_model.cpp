// CudaModel: the Llama / Qwen2 forward on the GPU in bf16/fp16 activations over GpuLinear layers
// (q|k|v and gate|up fused), a KV cache of max_batch slots, batched prefill and graph-replayed
// batched decode. Every op is a launcher of src/cuda/kernels on one stream; buffers are allocated
// once at load for max_step_tokens, after checking that everything fits in free GPU memory.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "cuda/cuda_check.h"
#include "cuda/kernels/add_rmsnorm_prologue.cuh"
#include "cuda/kernels/argmax.cuh"
#include "cuda/kernels/attention.cuh"
#include "cuda/kernels/embedding.cuh"
#include "cuda/kernels/rmsnorm.cuh"
#include "cuda/kernels/rope_kv.cuh"
#include "cuda/kernels/silu_mul.cuh"
#include "cuda/kernels/silu_mul_prologue.cuh"
#include "slidesparse/checkpoint.h"
#include "slidesparse/cuda_model.h"
#include "slidesparse/nm_tensor.h"
#include "slidesparse/synth.h"

namespace slidesparse {
namespace cuda {
namespace {

constexpr double kGB = 1e9;

std::string gb(size_t b) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f GB", static_cast<double>(b) / kGB);
  return s;
}

// Runs fn(begin, end) over [0, n) in contiguous chunks on all cores (at most 16).
void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  const int64_t t = std::min<int64_t>(
      {16, std::max<int64_t>(1, std::thread::hardware_concurrency()), std::max<int64_t>(1, n)});
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < t; ++i) {
    const int64_t b = n * i / t, e = n * (i + 1) / t;
    if (e > b) pool.emplace_back(fn, b, e);
  }
  for (std::thread& th : pool) th.join();
}

// Counter-based N(0, stddev) values: element i of stream `key` depends only on (key, i), so the
// split into threads does not change the weights. One 64-bit hash gives four elements, each an
// N(0, 1) quantile of a 65536-level table (inverse CDF at (j + 0.5) / 65536: tails to 4.3 sigma),
// about 20x faster than Box-Muller; weights are rounded to bf16 or 8 bits afterwards anyway.
uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}
const float* normal_table() {
  static const std::vector<float> t = [] {
    std::vector<float> v(65536);
    for (int j = 0; j < 32768; ++j) {
      const double p = (j + 0.5) / 65536.0;            // lower half; the upper half mirrors it
      const double u = std::sqrt(-2.0 * std::log(p));  // Abramowitz-Stegun 26.2.23 start
      double x = -(u - (2.515517 + 0.802853 * u + 0.010328 * u * u) /
                           (1 + 1.432788 * u + 0.189269 * u * u + 0.001308 * u * u * u));
      for (int it = 0; it < 3; ++it) {  // Newton on Phi(x) = p
        const double cdf = 0.5 * std::erfc(-x / std::sqrt(2.0));
        x -= (cdf - p) / (std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI));
      }
      v[static_cast<size_t>(j)] = static_cast<float>(x);
      v[static_cast<size_t>(65535 - j)] = static_cast<float>(-x);
    }
    return v;
  }();
  return t.data();
}
// Fills v[0, n) with elements first .. first+n-1 of stream `key` (first a multiple of 4).
void fill_normal(uint64_t key, int64_t first, int64_t n, float stddev, float* v) {
  const float* tab = normal_table();
  for (int64_t i = 0; i < n; i += 4) {
    const uint64_t r = splitmix(key ^ splitmix(static_cast<uint64_t>((first + i) / 4)));
    for (int64_t j = 0; j < 4 && i + j < n; ++j) v[i + j] = stddev * tab[(r >> (16 * j)) & 0xFFFF];
  }
}

uint64_t name_key(uint64_t seed, const std::string& name) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  return splitmix(h);
}

std::vector<float> random_normal(uint64_t key, int64_t n, float stddev) {
  std::vector<float> v(static_cast<size_t>(n));
  const int64_t chunks = (n + 4095) / 4096;
  parallel_for(chunks, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      fill_normal(key, c * 4096, std::min<int64_t>(4096, n - c * 4096), stddev, &v[c * 4096]);
  });
  return v;
}

// A random compact n:m tensor statistically like `convert` of N(0, 0.02) weights: uniformly random
// valid masks (n of m positions per block, padding positions holding 0), kept values N(0, 0.02)
// rounded to the float dtype or quantized per row with the DESIGN.md rule (quantize_rows).
NmTensor random_nm(uint64_t key, int64_t N, int64_t K, Pattern p, QuantMode q, DType float_t) {
  NmTensor t;
  t.pattern = p;
  t.N = N;
  t.K = K;
  t.value_dtype = q == QuantMode::kNone ? float_t : quant_storage_dtype(q);
  const int64_t blocks = t.blocks(), vpr = t.values_per_row();
  const size_t es = dtype_size(t.value_dtype);
  t.values.resize(static_cast<size_t>(N * vpr) * es);
  t.masks.resize(static_cast<size_t>(N * blocks));
  if (q != QuantMode::kNone) t.scales.resize(static_cast<size_t>(N));
  std::vector<uint16_t> choices;  // every mask with popcount n
  for (uint32_t mk = 0; mk < (1u << p.m); ++mk)
    if (__builtin_popcount(mk) == p.n) choices.push_back(static_cast<uint16_t>(mk));
  parallel_for(N, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(vpr)), fresh(static_cast<size_t>(vpr));
    for (int64_t r = r0; r < r1; ++r) {
      fill_normal(key, r * round_up(vpr, 4), vpr, 0.02f, fresh.data());
      for (int64_t b = 0; b < blocks; ++b) {
        const uint64_t h =
            splitmix(key ^ splitmix(0x6D61736BULL + static_cast<uint64_t>(r * blocks + b)));
        const uint16_t mk = choices[h % choices.size()];
        t.masks[static_cast<size_t>(r * blocks + b)] = mk;
        int j = 0;
        for (int i = 0; i < p.m; ++i) {
          if (!(mk >> i & 1)) continue;
          const int64_t col = b * p.m + i, vi = b * p.n + j++;
          row[static_cast<size_t>(vi)] = col < K ? fresh[static_cast<size_t>(vi)] : 0.0f;
        }
      }
      uint8_t* dst = t.values.data() + static_cast<size_t>(r * vpr) * es;
      if (q == QuantMode::kNone) {
        (void)convert_from_f32(float_t, row.data(), dst, vpr);
      } else {
        quantize_rows(q, row.data(), 1, vpr, dst, &t.scales[static_cast<size_t>(r)]);
      }
    }
  });
  return t;
}

// bf16 <-> fp16 values of a quant-none n:m tensor (a bf16 checkpoint run with fp16 activations).
Status nm_to_float_dtype(NmTensor* t, DType want) {
  if (t->quant() != QuantMode::kNone || t->value_dtype == want) return Status::Ok();
  const int64_t n = static_cast<int64_t>(t->values.size() / dtype_size(t->value_dtype));
  std::vector<float> f(static_cast<size_t>(n));
  SS_RETURN_IF_ERROR(convert_to_f32(t->value_dtype, t->values.data(), f.data(), n));
  std::vector<uint8_t> v(static_cast<size_t>(n) * dtype_size(want));
  SS_RETURN_IF_ERROR(convert_from_f32(want, f.data(), v.data(), n));
  t->values = std::move(v);
  t->value_dtype = want;
  return Status::Ok();
}

std::vector<float> concat(const std::vector<std::vector<float>>& parts) {
  std::vector<float> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// Where the weights of one fused layer come from, whatever the source.
struct FusedWeight {
  bool nm = false;
  NmTensor t;                                     // nm: the row-concatenation of the parts
  std::vector<float> w;                           // dense: fp32 [N, K]
  std::shared_ptr<const DenseWeightCodes> codes;  // dense, already converted (instead of w)
  int64_t N = 0, K = 0;
  std::vector<float> bias;  // [N] or empty
};

// The fused layers of the model, in execution order.
enum Fused { kQkv = 0, kO = 1, kGateUp = 2, kDown = 3 };
const char* const kFusedNames[] = {"qkv", "o", "gate_up", "down"};

struct Layer {
  std::unique_ptr<GpuLinear> lin[4];
  DeviceBuffer attn_norm, mlp_norm;  // [C] T
  DeviceBuffer kc, vc;               // [max_batch, max_ctx, KV*hd] T
};

// Ops of the profile, in order.
enum Op {
  kOpEmbedding,
  kOpRmsnorm,
  kOpQkv,
  kOpRopeKv,
  kOpAttention,
  kOpO,
  kOpGateUp,
  kOpSiluMul,
  kOpDown,
  kOpLmHead,
  kOpArgmax,
  kOpCount
};
const char* const kOpNames[] = {"embedding", "rmsnorm",  "qkv",  "rope_kv", "attention", "o",
                                "gate_up",   "silu_mul", "down", "lm_head", "argmax"};

// ---- weight accounting (the memory check runs before anything is allocated)

size_t est_dense(int64_t N, int64_t K, QuantMode q, DType act) {
  const size_t es = q == QuantMode::kNone ? dtype_size(act) : 1;
  return static_cast<size_t>(round_up(N, 16) * round_up(K, 16)) * es + static_cast<size_t>(N) * 8;
}
// Compressed 2:4 operand of the slided weight: half the values + metadata, + 64 KiB slack.
size_t est_sparse(int64_t N, int64_t K, Pattern p, QuantMode q, DType act) {
  const size_t es = q == QuantMode::kNone ? dtype_size(act) : 1;
  const int64_t al = es == 1 ? 32 : 16;
  const size_t el = static_cast<size_t>(round_up(N, al) * p.k_lifted_aligned(K, al));
  return el * es / 2 + el / 8 + (64u << 10) + static_cast<size_t>(N) * 8;
}
// Transient device memory of building one sparse layer (dense slided copy + compression buffer).
size_t est_sparse_build(int64_t N, int64_t K, Pattern p, QuantMode q, DType act) {
  const size_t es = q == QuantMode::kNone ? dtype_size(act) : 1;
  const int64_t al = es == 1 ? 32 : 16;
  return static_cast<size_t>(round_up(N, al) * p.k_lifted_aligned(K, al)) * es * 2;
}

struct FusedShape {
  int64_t N, K;
};
std::vector<FusedShape> fused_shapes(const ModelConfig& c) {
  const int64_t C = c.hidden_size, hd = c.head_dim;
  return {{(c.num_heads + 2 * c.num_kv_heads) * hd, C},
          {C, c.num_heads * hd},
          {2 * c.intermediate_size, C},
          {C, c.intermediate_size}};
}

// Device bytes of a model whose linears are n:m `p` (sparse/auto/dense mode) or dense with
// quant `q` (nm false): weights, the transient peak of building one sparse layer, and per token
// row the largest operand and accumulator row any fused layer keeps in the shared scratch.
// plain_input: some layer may be dense W16A16, which has no prologue slot and reads the normed /
// SwiGLU activations from the model's own [M, C] / [M, F] buffers (every other layer's input is
// written straight into its slot by the fused prologues, and those buffers are not allocated).
// delta: some layer is W16A16, whose o / down outputs go to the model's delta buffer [M, C] for
// the next add + RMSNorm (W8A8 layers add them to the residual stream in their epilogue).
struct MemEstimate {
  size_t weights = 0, transient = 0, xq_row = 0, acc_row = 0;
  bool plain_input = false, delta = false;
};
MemEstimate estimate_memory(const ModelConfig& c, bool nm, Pattern p, QuantMode q, LinearMode mode,
                            DType act, GemmBackend backend) {
  MemEstimate e;
  // kBest keeps two compressed copies of each sparse weight (cuSPARSELt's and CUTLASS's).
  auto eff = effective_gemm_backend(backend, true, q, act);
  const size_t sparse_copies = eff.ok() && *eff == GemmBackend::kBest ? 2 : 1;
  const size_t es_in = q == QuantMode::kNone ? dtype_size(act) : 1;
  const size_t es_out = q == QuantMode::kNone ? dtype_size(act) : 4;
  const int64_t al = es_in == 1 ? 32 : 16;
  e.delta = q == QuantMode::kNone;
  for (const FusedShape& s : fused_shapes(c)) {
    size_t one = 0;
    const bool dense = !nm || mode != LinearMode::kSparse,
               sparse = nm && mode != LinearMode::kDense;
    if (dense) {
      one += est_dense(s.N, s.K, q, act);
      e.plain_input = e.plain_input || q == QuantMode::kNone;
      e.xq_row = std::max(e.xq_row, static_cast<size_t>(round_up(s.K, 16)) * es_in);
    }
    if (sparse) {
      one += sparse_copies * est_sparse(s.N, s.K, p, q, act);
      e.transient = std::max(e.transient, est_sparse_build(s.N, s.K, p, q, act));
      e.xq_row = std::max(e.xq_row, static_cast<size_t>(p.k_lifted_aligned(s.K, al)) * es_in);
    }
    e.acc_row = std::max(e.acc_row, static_cast<size_t>(round_up(s.N, al)) * es_out);
    e.weights += one * static_cast<size_t>(c.num_layers);
  }
  const size_t es = dtype_size(act);
  e.weights += (c.tie_word_embeddings ? 1 : 2) * static_cast<size_t>(c.vocab_size * c.hidden_size) *
               es;  // embedding + lm_head (one shared table when tied)
  e.weights += static_cast<size_t>((2 * c.num_layers + 1) * c.hidden_size) * es;
  return e;
}

// ", GEMM <backend>" of a W8A8 model's description (what its int8 / fp8 linears run on).
std::string gemm_desc(const CudaModelOptions& opt, bool sparse, QuantMode q) {
  if (q == QuantMode::kNone) return "";
  auto b = effective_gemm_backend(opt.gemm_backend, sparse, q, opt.act_dtype);
  return std::string(", GEMM ") + (b.ok() ? gemm_backend_name(*b) : "?");
}

class CudaModelImpl final : public CudaModel {
 public:
  ~CudaModelImpl() override {
    if (stream_) cudaStreamSynchronize(stream_);
    for (auto& [b, g] : graphs_) cudaGraphExecDestroy(g);
    for (auto& e : events_) {
      cudaEventDestroy(e.first);
      cudaEventDestroy(e.second);
    }
    layers_.clear();
    lm_head_.reset();
    for (void* p : pinned_)
      if (p) cudaFreeHost(p);
    if (stream_) cudaStreamDestroy(stream_);
  }

  // Everything but the linears' weights: validates options, checks memory, allocates.
  static Expected<std::unique_ptr<CudaModelImpl>> create(const ModelConfig& c,
                                                         const CudaModelOptions& opt,
                                                         const MemEstimate& est) {
    SS_RETURN_IF_ERROR(check_device());
    if (opt.act_dtype != DType::kBF16 && opt.act_dtype != DType::kF16)
      return invalid_argument(std::string("cuda model: activation dtype ") +
                              dtype_name(opt.act_dtype) + " not supported (expected BF16 or F16)");
    if (opt.max_batch < 1 || opt.max_batch > 4096)
      return invalid_argument("cuda model: max_batch=" + std::to_string(opt.max_batch) +
                              " must be in [1, 4096]");
    const int64_t hd = c.head_dim;
    if (hd != 16 && hd != 32 && hd != 64 && hd != 128)
      return unsupported("cuda model: head_dim " + std::to_string(hd) +
                         " not supported by the attention kernels (16, 32, 64, 128)");
    auto m = std::unique_ptr<CudaModelImpl>(new CudaModelImpl());
    // SLIDESPARSE_PREFILL_ATTENTION: the prefill attention kernel (default auto; the others to
    // compare kernels end to end).
    if (const char* v = std::getenv("SLIDESPARSE_PREFILL_ATTENTION"); v && *v) {
      Status st = kernels::prefill_kernel_parse(v, &m->attn_kernel_);
      if (!st.ok()) return invalid_argument("SLIDESPARSE_PREFILL_ATTENTION: " + st.message());
    }
    // SLIDESPARSE_NORM: the W8A8 norm prologues' kernel -- auto (default: the register-row kernel
    // where it applies; add_rmsnorm_prologue.cuh) or cta (one CTA per row); the same outputs.
    if (const char* v = std::getenv("SLIDESPARSE_NORM"); v && *v) {
      Status st = kernels::norm_kernel_parse(v, &m->norm_kernel_);
      if (st.ok() && m->norm_kernel_ == kernels::NormKernel::kRegs)
        st = invalid_argument("norm kernel 'regs' (the engine takes cta or auto)");
      if (!st.ok()) return invalid_argument("SLIDESPARSE_NORM: " + st.message());
    }
    // SLIDESPARSE_SWIGLU: fast (default) or exact (bit-identical to the CPU reference's SiLU).
    if (const char* v = std::getenv("SLIDESPARSE_SWIGLU"); v && *v) {
      Status st = kernels::silu_math_parse(v, &m->silu_math_);
      if (!st.ok()) return invalid_argument("SLIDESPARSE_SWIGLU: " + st.message());
    }
    m->cfg_ = c;
    m->T_ = opt.act_dtype;
    m->max_batch_ = opt.max_batch;
    m->max_ctx_ =
        opt.max_ctx > 0 ? opt.max_ctx : std::min<int64_t>(c.max_position_embeddings, 4096);
    if (m->max_ctx_ < 1 || m->max_ctx_ > c.max_position_embeddings)
      return invalid_argument("cuda model: max_ctx=" + std::to_string(m->max_ctx_) +
                              " must be in [1, " + std::to_string(c.max_position_embeddings) +
                              "] (the model's max_position_embeddings)");
    m->max_step_ = opt.max_step_tokens > 0 ? opt.max_step_tokens
                                           : std::min<int64_t>(m->max_batch_ * m->max_ctx_, 65536);
    if (m->max_step_ < m->max_batch_)
      return invalid_argument("cuda model: max_step_tokens=" + std::to_string(m->max_step_) +
                              " must be >= max_batch=" + std::to_string(m->max_batch_) +
                              " (one decode step)");
    m->profile_ = opt.profile;
    m->gemm_backend_ = opt.gemm_backend;
    m->use_graphs_ = opt.cuda_graphs && !opt.profile;
    if (!opt.tuning_path.empty()) {
      SS_ASSIGN_OR_RETURN(TuningTable tt, TuningTable::load(opt.tuning_path));
      m->tuning_ = std::make_unique<TuningTable>(std::move(tt));
    }

    // Memory check before any large allocation.
    const size_t es = dtype_size(m->T_);
    const int64_t C = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
    const int64_t H = c.num_heads, KV = c.num_kv_heads, Mx = m->max_step_;
    const int64_t qkvN = (H + 2 * KV) * hd;
    const size_t kv =
        2 * static_cast<size_t>(c.num_layers * m->max_batch_ * m->max_ctx_ * KV * hd) * es;
    // residual x [M, C]; qkv; att [M, H*hd]; gate|up [M, 2F]; for W16A16 layers (est.delta) the
    // delta d [M, C], for W16A16 dense layers (est.plain_input) also normed h [M, C] and SwiGLU a
    // [M, F]
    const int64_t plain = (est.plain_input ? C + F : 0) + (est.delta ? C : 0);
    size_t acts = static_cast<size_t>(Mx * (C + qkvN + H * hd + 2 * F + plain)) * es;
    acts += static_cast<size_t>(m->max_batch_ * (2 * C + V)) * es;  // last rows + logits
    // Shared linear scratch: the largest operand + scales + accumulator rows of a fused layer at
    // max_step_tokens (padded), the lm_head's accumulators at max_batch, the cuBLASLt workspace.
    const size_t Mp = static_cast<size_t>(round_up(Mx, 32));
    const size_t scratch =
        Mp * (est.xq_row + 4) +
        std::max(Mp * est.acc_row, static_cast<size_t>(round_up(m->max_batch_, 16) * V) * es) +
        (64u << 20);
    const size_t weight_estimate = est.weights, load_transient = est.transient;
    const size_t attn_ws =
        kernels::attention_decode_workspace_bytes(m->max_batch_, H, hd, m->max_ctx_);
    const size_t need = weight_estimate + kv + acts + scratch + attn_ws;
    size_t free_b = 0, total_b = 0;
    SS_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
    const size_t margin = 512u << 20;  // CUDA context growth, library handles, plans
    if (need + load_transient + margin > free_b)
      return Status{
          StatusCode::kOutOfMemory,
          "cuda model: needs " + gb(need + load_transient + margin) + " (weights " +
              gb(weight_estimate) + " + KV cache " + gb(kv) + " for max_batch=" +
              std::to_string(m->max_batch_) + " x max_ctx=" + std::to_string(m->max_ctx_) +
              " + workspace " + gb(acts + scratch + attn_ws) +
              " for max_step_tokens=" + std::to_string(Mx) + " + load peak " + gb(load_transient) +
              " + 0.5 GB margin) but the GPU has " + gb(free_b) + " free of " + gb(total_b)};

    SS_CUDA_TRY(cudaStreamCreateWithFlags(&m->stream_, cudaStreamNonBlocking));
    m->scratch_ = make_linear_scratch();
    SS_RETURN_IF_ERROR(m->x_.reserve(static_cast<size_t>(Mx * C) * es));
    if (est.delta) SS_RETURN_IF_ERROR(m->d_.reserve(static_cast<size_t>(Mx * C) * es));
    if (est.plain_input) SS_RETURN_IF_ERROR(m->h_.reserve(static_cast<size_t>(Mx * C) * es));
    SS_RETURN_IF_ERROR(m->qkv_.reserve(static_cast<size_t>(Mx * qkvN) * es));
    SS_RETURN_IF_ERROR(m->att_.reserve(static_cast<size_t>(Mx * H * hd) * es));
    SS_RETURN_IF_ERROR(m->gu_.reserve(static_cast<size_t>(Mx * 2 * F) * es));
    if (est.plain_input) SS_RETURN_IF_ERROR(m->a_.reserve(static_cast<size_t>(Mx * F) * es));
    SS_RETURN_IF_ERROR(m->xl_.reserve(static_cast<size_t>(m->max_batch_ * C) * es));
    SS_RETURN_IF_ERROR(m->dl_.reserve(static_cast<size_t>(m->max_batch_ * C) * es));
    SS_RETURN_IF_ERROR(m->hl_.reserve(static_cast<size_t>(m->max_batch_ * C) * es));
    SS_RETURN_IF_ERROR(m->logits_.reserve(static_cast<size_t>(m->max_batch_ * V) * es));
    SS_RETURN_IF_ERROR(m->next_.reserve(static_cast<size_t>(m->max_batch_) * 4));
    SS_RETURN_IF_ERROR(m->ids_.reserve(static_cast<size_t>(Mx) * 4));
    SS_RETURN_IF_ERROR(m->pos_.reserve(static_cast<size_t>(Mx) * 4));
    SS_RETURN_IF_ERROR(m->slot_.reserve(static_cast<size_t>(Mx) * 4));
    SS_RETURN_IF_ERROR(m->kvlen_.reserve(static_cast<size_t>(m->max_batch_) * 4));
    SS_RETURN_IF_ERROR(m->attn_ws_.reserve(std::max<size_t>(attn_ws, 16)));
    m->attn_ws_bytes_ = attn_ws;
    SS_RETURN_IF_ERROR(m->alloc_pinned(reinterpret_cast<void**>(&m->h_ids_), Mx * 4));
    SS_RETURN_IF_ERROR(m->alloc_pinned(reinterpret_cast<void**>(&m->h_pos_), Mx * 4));
    SS_RETURN_IF_ERROR(m->alloc_pinned(reinterpret_cast<void**>(&m->h_slot_), Mx * 4));
    SS_RETURN_IF_ERROR(m->alloc_pinned(reinterpret_cast<void**>(&m->h_kvlen_), m->max_batch_ * 4));
    SS_RETURN_IF_ERROR(m->alloc_pinned(reinterpret_cast<void**>(&m->h_next_), m->max_batch_ * 4));
    SS_RETURN_IF_ERROR(m->alloc_pinned(&m->h_logits_, m->max_batch_ * V * es));
    m->layers_.resize(static_cast<size_t>(c.num_layers));
    for (Layer& L : m->layers_) {
      const size_t cache = static_cast<size_t>(m->max_batch_ * m->max_ctx_ * KV * hd) * es;
      SS_RETURN_IF_ERROR(L.kc.reserve(cache));
      SS_RETURN_IF_ERROR(L.vc.reserve(cache));
    }
    m->cache_len_.assign(static_cast<size_t>(m->max_batch_), 0);
    const std::vector<float> inv = rope_inv_freq(c);
    SS_RETURN_IF_ERROR(m->upload_f32(m->inv_freq_, inv));
    SS_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
    m->base_used_ = total_b - free_b;
    return m;
  }

  // q8: the layer is int8 / fp8 (only those run CUTLASS; kBest and kDefault decide that alone).
  LinearConfig linear_config(bool q8 = false) const {
    LinearConfig lc;
    lc.dense_backend = lc.sparse_backend =
        gemm_backend_ == GemmBackend::kCutlass && !q8 ? GemmBackend::kLibrary : gemm_backend_;
    lc.act_dtype = T_;
    lc.tuning = tuning_.get();
    lc.stream = stream_;
    lc.scratch = scratch_;
    return lc;
  }

  Status set_linear(int64_t layer, int f, FusedWeight&& fw, LinearMode mode, QuantMode dense_q) {
    const float* bias = fw.bias.empty() ? nullptr : fw.bias.data();
    std::unique_ptr<GpuLinear> l;
    const QuantMode q = fw.nm ? fw.t.quant() : fw.codes ? fw.codes->quant : dense_q;
    const LinearConfig lc = linear_config(q != QuantMode::kNone);
    if (fw.nm) {
      SS_RETURN_IF_ERROR(nm_to_float_dtype(&fw.t, T_));
      SS_ASSIGN_OR_RETURN(l, make_linear(mode, fw.t, bias, lc));
    } else if (fw.codes) {
      SS_ASSIGN_OR_RETURN(l, make_dense_linear(*fw.codes, bias, lc));
    } else {
      SS_ASSIGN_OR_RETURN(l, make_dense_linear(fw.w.data(), fw.N, fw.K, dense_q, bias, lc));
    }
    layers_[static_cast<size_t>(layer)].lin[f] = std::move(l);
    return Status::Ok();
  }

  // Embedding table [V, C] and lm_head (the same when tied), norms: fp32 host -> T on device.
  // Tied: the embedding kernel reads the lm_head's copy of the table (same [V, C] T layout and
  // conversion), so the table is on the device once.
  Status set_embeddings(const std::vector<float>& embed, const std::vector<float>* lm_head) {
    const int64_t V = cfg_.vocab_size, C = cfg_.hidden_size;
    const std::vector<float>& w = lm_head ? *lm_head : embed;
    SS_ASSIGN_OR_RETURN(
        lm_head_, make_dense_linear(w.data(), V, C, QuantMode::kNone, nullptr, linear_config()));
    embed_w_ = lm_head ? nullptr : lm_head_->dense_weight();
    if (!embed_w_) {
      SS_RETURN_IF_ERROR(upload_t(embed_, embed));
      embed_w_ = embed_.get();
    }
    return Status::Ok();
  }
  Status set_norms(int64_t layer, const std::vector<float>& attn, const std::vector<float>& mlp) {
    Layer& L = layers_[static_cast<size_t>(layer)];
    SS_RETURN_IF_ERROR(upload_t(L.attn_norm, attn));
    return upload_t(L.mlp_norm, mlp);
  }
  Status set_final_norm(const std::vector<float>& w) { return upload_t(final_norm_, w); }

  // Weights are in: weight_bytes = device memory the loading took; then the forward buffers of
  // every linear are reserved for the largest step (shared scratch, grown once).
  Status finish_load(std::string desc) {
    desc_ = std::move(desc);
    SS_CUDA_TRY(cudaStreamSynchronize(stream_));
    size_t free_b = 0, total_b = 0;
    SS_CUDA_TRY(cudaMemGetInfo(&free_b, &total_b));
    weight_bytes_ = total_b - free_b > base_used_ ? total_b - free_b - base_used_ : 0;
    for (Layer& L : layers_)
      for (auto& l : L.lin) SS_RETURN_IF_ERROR(l->reserve(max_step_));
    SS_RETURN_IF_ERROR(lm_head_->reserve(max_batch_));
    note_memory();
    tuning_note_ = untuned_sparse_gemms();
    return Status::Ok();
  }

  // The distinct sparse GEMMs (backend, precision, pattern, N x K, M) without a tuning entry at
  // M = 1 and at the prefill size; "" when there are none.
  std::string untuned_sparse_gemms() const {
    std::set<std::string> all, untuned, kinds;
    for (const Layer& L : layers_)
      for (const auto& l : L.lin)
        for (int64_t M : {int64_t{1}, std::min<int64_t>(max_step_, 16384)}) {
          const TuneEntry e = l->config(M, -1, 1);
          // Dense GEMMs: cuBLASLt's heuristic / CUTLASS's default came within 0-10 % of the tuned
          // choice in the H100 tune logs, not the 2x of the sparse ones.
          if (e.pattern == "dense") continue;
          const std::string key = e.backend + " " + e.precision + " " + e.pattern + " " +
                                  std::to_string(e.N) + "x" + std::to_string(e.K) +
                                  " M=" + std::to_string(M);
          all.insert(key);
          if (tuning_ &&
              tuning_->find_nearest(e.backend, e.precision, e.pattern, e.N, e.K, M) != nullptr)
            continue;
          untuned.insert(key);
          kinds.insert(e.precision + " " + e.pattern + " " + e.backend +
                       " at M=" + std::to_string(M));
        }
    if (untuned.empty()) return "";
    std::string k;
    for (const std::string& x : kinds) k += (k.empty() ? "" : ", ") + x;
    return "note: " + std::to_string(untuned.size()) + " of " + std::to_string(all.size()) +
           " sparse GEMM shapes have no tuning entry (" + k +
           "): they run the library heuristic / default configuration, up to 2.3x slower on an "
           "H100; pass --tuning with `slidesparse tune` results for this GPU (docs/e2e.md)";
  }

  // ---- CudaModel
  const ModelConfig& config() const override { return cfg_; }
  std::string description() const override { return desc_; }
  std::string tuning_note() const override { return tuning_note_; }
  int64_t max_batch() const override { return max_batch_; }
  int64_t max_ctx() const override { return max_ctx_; }
  int64_t cache_len(int64_t slot) const override {
    return slot >= 0 && slot < max_batch_ ? cache_len_[static_cast<size_t>(slot)] : 0;
  }
  size_t weight_bytes() const override { return weight_bytes_; }
  size_t peak_memory_bytes() const override { return peak_bytes_; }
  std::vector<OpTime> profile() const override {
    std::vector<OpTime> out;
    for (int i = 0; i < kOpCount; ++i)
      if (op_calls_[i] > 0) out.push_back({kOpNames[i], op_ms_[i], op_calls_[i]});
    return out;
  }
  void reset_profile() override {
    std::fill(std::begin(op_ms_), std::end(op_ms_), 0.0);
    std::fill(std::begin(op_calls_), std::end(op_calls_), int64_t{0});
  }
  Status synchronize() override {
    SS_CUDA_TRY(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  Status prefill(const int32_t* tokens, int64_t S, int64_t L, float* logits,
                 int32_t* next) override {
    if (S < 1 || S > max_batch_)
      return invalid_argument("prefill: S=" + std::to_string(S) + " sequences, expected 1.." +
                              std::to_string(max_batch_) + " (max_batch)");
    if (L < 1 || L > max_ctx_)
      return invalid_argument("prefill: L=" + std::to_string(L) + " tokens, expected 1.." +
                              std::to_string(max_ctx_) + " (max_ctx)");
    if (S * L > max_step_)
      return invalid_argument("prefill: S*L=" + std::to_string(S * L) +
                              " tokens exceed max_step_tokens=" + std::to_string(max_step_));
    if (!tokens) return invalid_argument("prefill: no tokens");
    SS_RETURN_IF_ERROR(check_ids(tokens, S * L, "prefill"));
    const int64_t M = S * L;
    for (int64_t s = 0; s < S; ++s)
      for (int64_t i = 0; i < L; ++i) {
        h_pos_[s * L + i] = static_cast<int32_t>(i);
        h_slot_[s * L + i] = static_cast<int32_t>(s);
      }
    std::memcpy(h_ids_, tokens, static_cast<size_t>(M) * 4);
    start_step();
    SS_RETURN_IF_ERROR(upload_step(M, 0));
    // A first run of a step shape may create GEMM plans that grow library workspaces.
    const bool fresh = seen_.insert({S, L}).second;
    SS_RETURN_IF_ERROR(forward(M, S, L, /*decode=*/false));
    for (int64_t s = 0; s < S; ++s) cache_len_[static_cast<size_t>(s)] = L;
    SS_RETURN_IF_ERROR(finish_step(S, logits, next));
    if (fresh) {  // only a new shape allocates (plans, library workspaces)
      drop_graphs();
      note_memory();
    }
    return Status::Ok();
  }

  Status prefill_all_logits(const int32_t* tokens, int64_t L, float* logits) override {
    const int64_t V = cfg_.vocab_size, C = cfg_.hidden_size;
    if (!logits) return invalid_argument("prefill_all_logits: no logits buffer");
    SS_RETURN_IF_ERROR(prefill(tokens, 1, L, L == 1 ? logits : nullptr, nullptr));
    if (L == 1) return Status::Ok();
    // x_ (and d_, when the last down projection did not add it) still hold every row's residual
    // and last MLP delta (the step normed copies of the last rows): the final add + norm and
    // the lm_head run on chunks of max_batch rows.
    const size_t es = dtype_size(T_), row = static_cast<size_t>(C) * es;
    for (int64_t r0 = 0; r0 < L; r0 += max_batch_) {
      const int64_t n = std::min(max_batch_, L - r0);
      SS_RETURN_IF_ERROR(kernels::launch_add_rmsnorm(
          T_, x_.as<uint8_t>() + r0 * row, last_delta_ ? d_.as<uint8_t>() + r0 * row : nullptr,
          final_norm_.get(), static_cast<float>(cfg_.rms_norm_eps), hl_.get(), n, C, stream_));
      SS_RETURN_IF_ERROR(lm_head_->forward(hl_.get(), logits_.get(), n, stream_));
      SS_RETURN_IF_ERROR(finish_step(n, logits + r0 * V, nullptr));  // copy + convert
    }
    return Status::Ok();
  }

  Status decode(const int32_t* tokens, int64_t B, float* logits, int32_t* next) override {
    if (B < 1 || B > max_batch_)
      return invalid_argument("decode: B=" + std::to_string(B) + " sequences, expected 1.." +
                              std::to_string(max_batch_) + " (max_batch)");
    if (!tokens) return invalid_argument("decode: no tokens");
    for (int64_t b = 0; b < B; ++b)
      if (cache_len_[static_cast<size_t>(b)] + 1 > max_ctx_)
        return invalid_argument("decode: slot " + std::to_string(b) + " is full (" +
                                std::to_string(cache_len_[static_cast<size_t>(b)]) +
                                " tokens, max_ctx=" + std::to_string(max_ctx_) + ")");
    SS_RETURN_IF_ERROR(check_ids(tokens, B, "decode"));
    for (int64_t b = 0; b < B; ++b) {
      const int64_t len = cache_len_[static_cast<size_t>(b)];
      h_ids_[b] = tokens[b];
      h_pos_[b] = static_cast<int32_t>(len);
      h_slot_[b] = static_cast<int32_t>(b);
      h_kvlen_[b] = static_cast<int32_t>(len + 1);
    }
    start_step();
    SS_RETURN_IF_ERROR(upload_step(B, B));
    const bool fresh = seen_.insert({-B, 1}).second;
    if (!use_graphs_ || fresh) {
      SS_RETURN_IF_ERROR(forward(B, B, 1, /*decode=*/true));
    } else {
      auto it = graphs_.find(B);
      if (it == graphs_.end()) {
        SS_ASSIGN_OR_RETURN(cudaGraphExec_t g, capture(B));
        it = graphs_.emplace(B, g).first;
        note_memory();
      }
      SS_CUDA_TRY(cudaGraphLaunch(it->second, stream_));
    }
    for (int64_t b = 0; b < B; ++b) ++cache_len_[static_cast<size_t>(b)];
    SS_RETURN_IF_ERROR(finish_step(B, logits, next));
    if (fresh) {  // only a new shape allocates (plans, library workspaces)
      drop_graphs();
      note_memory();
    }
    return Status::Ok();
  }

 private:
  CudaModelImpl() = default;

  Status alloc_pinned(void** p, int64_t bytes) {
    SS_CUDA_TRY(cudaMallocHost(p, static_cast<size_t>(std::max<int64_t>(bytes, 16))));
    pinned_.push_back(*p);
    return Status::Ok();
  }
  Status upload_f32(DeviceBuffer& b, const std::vector<float>& v) {
    SS_RETURN_IF_ERROR(b.reserve(v.size() * 4));
    SS_CUDA_TRY(cudaMemcpy(b.get(), v.data(), v.size() * 4, cudaMemcpyHostToDevice));
    return Status::Ok();
  }
  Status upload_t(DeviceBuffer& b, const std::vector<float>& v) {
    const size_t es = dtype_size(T_);
    std::vector<uint8_t> raw(v.size() * es);
    std::atomic<bool> bad{false};
    parallel_for(static_cast<int64_t>(v.size()), [&](int64_t s, int64_t e) {
      if (!convert_from_f32(T_, v.data() + s, raw.data() + s * es, e - s).ok()) bad = true;
    });
    if (bad) return internal_error("cuda model: conversion to " + std::string(dtype_name(T_)));
    SS_RETURN_IF_ERROR(b.reserve(raw.size()));
    SS_CUDA_TRY(cudaMemcpy(b.get(), raw.data(), raw.size(), cudaMemcpyHostToDevice));
    return Status::Ok();
  }

  Status check_ids(const int32_t* ids, int64_t n, const char* what) const {
    for (int64_t i = 0; i < n; ++i)
      if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
        return invalid_argument(std::string(what) + ": token id " + std::to_string(ids[i]) +
                                " at index " + std::to_string(i) + " outside the vocabulary [0, " +
                                std::to_string(cfg_.vocab_size) + ")");
    return Status::Ok();
  }

  // Host step arrays (pinned) -> device; B > 0 also uploads kv_len (decode).
  Status upload_step(int64_t M, int64_t B) {
    SS_CUDA_TRY(cudaMemcpyAsync(ids_.get(), h_ids_, M * 4, cudaMemcpyHostToDevice, stream_));
    SS_CUDA_TRY(cudaMemcpyAsync(pos_.get(), h_pos_, M * 4, cudaMemcpyHostToDevice, stream_));
    SS_CUDA_TRY(cudaMemcpyAsync(slot_.get(), h_slot_, M * 4, cudaMemcpyHostToDevice, stream_));
    if (B > 0)
      SS_CUDA_TRY(cudaMemcpyAsync(kvlen_.get(), h_kvlen_, B * 4, cudaMemcpyHostToDevice, stream_));
    return Status::Ok();
  }

  // Waits for the step, copies logits (T -> fp32) and next ids, accumulates the profile.
  Status finish_step(int64_t R, float* logits, int32_t* next) {
    const int64_t V = cfg_.vocab_size;
    const size_t es = dtype_size(T_);
    if (logits)
      SS_CUDA_TRY(cudaMemcpyAsync(h_logits_, logits_.get(), static_cast<size_t>(R * V) * es,
                                  cudaMemcpyDeviceToHost, stream_));
    if (next)
      SS_CUDA_TRY(cudaMemcpyAsync(h_next_, next_.get(), static_cast<size_t>(R) * 4,
                                  cudaMemcpyDeviceToHost, stream_));
    SS_CUDA_TRY(cudaStreamSynchronize(stream_));
    if (logits) SS_RETURN_IF_ERROR(convert_to_f32(T_, h_logits_, logits, R * V));
    if (next) std::memcpy(next, h_next_, static_cast<size_t>(R) * 4);
    if (profile_) {
      for (const auto& [op, ev] : pending_) {
        float ms = 0;
        SS_CUDA_TRY(cudaEventElapsedTime(&ms, ev.first, ev.second));
        op_ms_[op] += ms;
        ++op_calls_[op];
      }
      pending_.clear();
      used_events_ = 0;
    }
    return Status::Ok();
  }

  void start_step() {
    pending_.clear();
    used_events_ = 0;
  }

  void note_memory() {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      peak_bytes_ = std::max(peak_bytes_, total_b - free_b);
  }

  void drop_graphs() {
    for (auto& [b, g] : graphs_) cudaGraphExecDestroy(g);
    graphs_.clear();
  }

  Expected<cudaGraphExec_t> capture(int64_t B) {
    SS_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed));
    Status st = forward(B, B, 1, /*decode=*/true);
    cudaGraph_t graph = nullptr;
    cudaError_t e = cudaStreamEndCapture(stream_, &graph);
    if (!st.ok()) {
      if (graph) cudaGraphDestroy(graph);
      return st;
    }
    SS_CUDA_TRY(e);
    cudaGraphExec_t exec = nullptr;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    SS_CUDA_TRY(e);
    return exec;
  }

  // Runs fn as op `op`, between two events in profile mode.
  template <class Fn>
  Status timed(Op op, Fn&& fn) {
    if (!profile_) return fn();
    if (used_events_ == events_.size()) {
      std::pair<cudaEvent_t, cudaEvent_t> e{};
      SS_CUDA_TRY(cudaEventCreate(&e.first));
      SS_CUDA_TRY(cudaEventCreate(&e.second));
      events_.push_back(e);
    }
    auto ev = events_[used_events_++];
    SS_CUDA_TRY(cudaEventRecord(ev.first, stream_));
    SS_RETURN_IF_ERROR(fn());
    SS_CUDA_TRY(cudaEventRecord(ev.second, stream_));
    pending_.push_back({op, ev});
    return Status::Ok();
  }

  // add_rmsnorm(x, d, w) into the input of `next`: its prologue slot when it has one (fused),
  // else h (and `next` reads h). *fused tells which.
  Status norm_into(void* x, const void* d, const DeviceBuffer& w, int64_t M, GpuLinear* next,
                   bool* fused) {
    const float eps = static_cast<float>(cfg_.rms_norm_eps);
    *fused = false;
    SS_ASSIGN_OR_RETURN(InputSlot slot, next->input_slot(M));
    if (slot.codes) {
      *fused = true;
      return timed(kOpRmsnorm, [&] {
        return kernels::launch_add_rmsnorm_prologue(T_, x, d, w.get(), eps, M, cfg_.hidden_size,
                                                    slot, stream_,
                                                    d ? kernels::NormKernel::kCta : norm_kernel_);
      });
    }
    if (!h_.get()) return internal_error("cuda model: a W16A16 layer without its input buffer");
    return timed(kOpRmsnorm, [&] {
      return kernels::launch_add_rmsnorm(T_, x, d, w.get(), eps, h_.get(), M, cfg_.hidden_size,
                                         stream_);
    });
  }

  Status linear(Op op, GpuLinear* l, bool prepared, const void* in, void* out, int64_t M) {
    return timed(op, [&] {
      return prepared ? l->forward_prepared(out, M, stream_) : l->forward(in, out, M, stream_);
    });
  }

  // A sublayer's output projection l(in) added to the residual stream x_: by the layer's
  // epilogue when it can (W8A8: *delta = null), else written to d_ for the next add + RMSNorm
  // (*delta = d_). The same roundings either way: x = T(x + T(y)).
  Status residual_linear(Op op, GpuLinear* l, bool prepared, const void* in, int64_t M,
                         const void** delta) {
    if (!l->fuses_residual()) {
      if (!d_.get()) return internal_error("cuda model: a W16A16 layer without its delta buffer");
      *delta = d_.get();
      return linear(op, l, prepared, in, d_.get(), M);
    }
    *delta = nullptr;
    return timed(op, [&] {
      return prepared ? l->forward_prepared_residual(x_.get(), M, stream_)
                      : l->forward_residual(in, x_.get(), M, stream_);
    });
  }

  // One step over M = S*L rows (decode: S = B, L = 1) whose ids/pos/slot (and kv_len) are on
  // the device; leaves the logits of each sequence's last row in logits_ and argmax in next_.
  Status forward(int64_t M, int64_t S, int64_t L, bool decode) {
    const ModelConfig& c = cfg_;
    const int64_t C = c.hidden_size, H = c.num_heads, KV = c.num_kv_heads, hd = c.head_dim;
    const int64_t F = c.intermediate_size, V = c.vocab_size, qkvN = (H + 2 * KV) * hd;
    SS_RETURN_IF_ERROR(timed(kOpEmbedding, [&] {
      return kernels::launch_embedding(T_, embed_w_, V, C, ids_.as<int32_t>(), M, x_.get(),
                                       stream_);
    }));
    const void* delta = nullptr;  // what the next norm adds to x_ first (null: nothing)
    for (size_t li = 0; li < layers_.size(); ++li) {
      Layer& Ly = layers_[li];
      bool fused = false;
      // The residual stream takes the previous layer's MLP output here unless its down
      // projection added it already (and there is none before layer 0).
      SS_RETURN_IF_ERROR(norm_into(x_.get(), delta, Ly.attn_norm, M, Ly.lin[kQkv].get(), &fused));
      SS_RETURN_IF_ERROR(linear(kOpQkv, Ly.lin[kQkv].get(), fused, h_.get(), qkv_.get(), M));
      SS_RETURN_IF_ERROR(timed(kOpRopeKv, [&] {
        return kernels::launch_rope_kv(T_, qkv_.get(), qkvN, M, H, KV, hd, pos_.as<int32_t>(),
                                       slot_.as<int32_t>(), inv_freq_.as<float>(), Ly.kc.get(),
                                       Ly.vc.get(), max_ctx_, stream_);
      }));
      SS_RETURN_IF_ERROR(timed(kOpAttention, [&] {
        if (decode)
          return kernels::launch_attention_decode(
              T_, qkv_.get(), qkvN, Ly.kc.get(), Ly.vc.get(), max_ctx_, kvlen_.as<int32_t>(), S, H,
              KV, hd, att_.get(), H * hd, attn_ws_.get(), attn_ws_bytes_, stream_);
        return kernels::launch_attention_prefill(T_, qkv_.get(), qkvN, Ly.kc.get(), Ly.vc.get(),
                                                 max_ctx_, S, L, 0, H, KV, hd, att_.get(), H * hd,
                                                 stream_, attn_kernel_);
      }));
      SS_RETURN_IF_ERROR(residual_linear(kOpO, Ly.lin[kO].get(), false, att_.get(), M, &delta));
      SS_RETURN_IF_ERROR(norm_into(x_.get(), delta, Ly.mlp_norm, M, Ly.lin[kGateUp].get(), &fused));
      SS_RETURN_IF_ERROR(linear(kOpGateUp, Ly.lin[kGateUp].get(), fused, h_.get(), gu_.get(), M));
      GpuLinear* down = Ly.lin[kDown].get();
      SS_ASSIGN_OR_RETURN(InputSlot slot, down->input_slot(M));
      const bool down_fused = slot.codes != nullptr;
      if (down_fused) {
        SS_RETURN_IF_ERROR(timed(kOpSiluMul, [&] {
          return kernels::launch_silu_mul_prologue(T_, gu_.get(), 2 * F, M, F, slot, stream_,
                                                   silu_math_);
        }));
      } else {
        if (!a_.get()) return internal_error("cuda model: a W16A16 layer without its input buffer");
        SS_RETURN_IF_ERROR(timed(kOpSiluMul, [&] {
          return kernels::launch_silu_mul(T_, gu_.get(), 2 * F, M, F, a_.get(), stream_,
                                          silu_math_);
        }));
      }
      SS_RETURN_IF_ERROR(residual_linear(kOpDown, down, down_fused, a_.get(), M, &delta));
    }
    last_delta_ = delta != nullptr;
    // Final residual + norm on the last row of each sequence only.
    const size_t es = dtype_size(T_);
    SS_RETURN_IF_ERROR(timed(kOpRmsnorm, [&]() -> Status {
      void* xr = x_.get();
      const void* dr = delta;
      if (L > 1) {
        const size_t row = static_cast<size_t>(C) * es, stride = static_cast<size_t>(L) * row;
        SS_CUDA_TRY(cudaMemcpy2DAsync(xl_.get(), row, x_.as<uint8_t>() + (L - 1) * row, stride, row,
                                      S, cudaMemcpyDeviceToDevice, stream_));
        if (dr) {
          SS_CUDA_TRY(cudaMemcpy2DAsync(dl_.get(), row, d_.as<uint8_t>() + (L - 1) * row, stride,
                                        row, S, cudaMemcpyDeviceToDevice, stream_));
          dr = dl_.get();
        }
        xr = xl_.get();
      }
      return kernels::launch_add_rmsnorm(T_, xr, dr, final_norm_.get(),
                                         static_cast<float>(c.rms_norm_eps), hl_.get(), S, C,
                                         stream_);
    }));
    SS_RETURN_IF_ERROR(linear(kOpLmHead, lm_head_.get(), false, hl_.get(), logits_.get(), S));
    SS_RETURN_IF_ERROR(timed(kOpArgmax, [&] {
      return kernels::launch_argmax(T_, logits_.get(), V, S, V, next_.as<int32_t>(), stream_);
    }));
    return Status::Ok();
  }

  ModelConfig cfg_;
  DType T_ = DType::kBF16;
  std::string desc_;
  int64_t max_batch_ = 1, max_ctx_ = 0, max_step_ = 0;
  bool profile_ = false, use_graphs_ = true;
  bool last_delta_ = true;  // the last forward left the final MLP delta in d_ (not added yet)
  std::unique_ptr<TuningTable> tuning_;
  std::string tuning_note_;  // tuning_note(), set by finish_load
  kernels::PrefillKernel attn_kernel_ = kernels::PrefillKernel::kAuto;
  kernels::SiluMath silu_math_ = kernels::SiluMath::kFast;
  kernels::NormKernel norm_kernel_ = kernels::NormKernel::kAuto;  // SLIDESPARSE_NORM
  GemmBackend gemm_backend_ = GemmBackend::kBest;
  cudaStream_t stream_ = nullptr;
  std::shared_ptr<LinearScratch> scratch_;
  std::vector<Layer> layers_;
  std::unique_ptr<GpuLinear> lm_head_;
  DeviceBuffer embed_, final_norm_, inv_freq_;  // [V, C] T (untied), [C] T, [hd/2] fp32
  const void* embed_w_ = nullptr;               // the table: embed_ or the tied lm_head's weight
  DeviceBuffer x_, d_, h_;                      // [M, C] T: residual, delta, normed
  DeviceBuffer qkv_;                            // [M, (H + 2 KV) hd] T
  DeviceBuffer att_;                            // [M, H hd] T
  DeviceBuffer gu_;                             // [M, 2F] T
  DeviceBuffer a_;                              // [M, F] T
  DeviceBuffer xl_, dl_, hl_;                   // [max_batch, C] T: last rows
  DeviceBuffer logits_;                         // [max_batch, V] T
  DeviceBuffer next_;                           // [max_batch] int32
  DeviceBuffer ids_, pos_, slot_;               // [M] int32
  DeviceBuffer kvlen_;                          // [max_batch] int32
  DeviceBuffer attn_ws_;
  size_t attn_ws_bytes_ = 0;
  int32_t *h_ids_ = nullptr, *h_pos_ = nullptr, *h_slot_ = nullptr, *h_kvlen_ = nullptr,
          *h_next_ = nullptr;  // pinned
  void* h_logits_ = nullptr;   // pinned [max_batch, V] T
  std::vector<void*> pinned_;
  std::vector<int64_t> cache_len_;
  std::set<std::pair<int64_t, int64_t>> seen_;  // step shapes run once: (S, L) or (-B, 1)
  std::map<int64_t, cudaGraphExec_t> graphs_;   // decode graph per B
  size_t weight_bytes_ = 0, peak_bytes_ = 0, base_used_ = 0;
  // profile
  std::vector<std::pair<cudaEvent_t, cudaEvent_t>> events_;
  size_t used_events_ = 0;
  std::vector<std::pair<Op, std::pair<cudaEvent_t, cudaEvent_t>>> pending_;
  double op_ms_[kOpCount] = {};
  int64_t op_calls_[kOpCount] = {};
};

std::string act_name(DType t) {
  return t == DType::kF16 ? "fp16" : "bf16";
}

// Fused (q|k|v, o, gate|up, down) weights of layer l from per-linear parts.
Expected<FusedWeight> fuse_nm(std::vector<NmTensor> parts, std::vector<std::vector<float>> biases) {
  FusedWeight fw;
  fw.nm = true;
  if (parts.size() == 1) {
    fw.t = std::move(parts[0]);
  } else {
    std::vector<const NmTensor*> ptrs;
    for (const NmTensor& t : parts) ptrs.push_back(&t);
    SS_ASSIGN_OR_RETURN(fw.t, nm_concat_rows(ptrs));
  }
  fw.N = fw.t.N;
  fw.K = fw.t.K;
  fw.bias = concat(biases);
  return fw;
}

}  // namespace

// ---- load / synthetic

Expected<std::unique_ptr<CudaModel>> load_cuda_model(const std::string& path,
                                                     const CudaModelOptions& opt) {
  std::error_code ec;  // a file, not a directory: a GGUF model (the CPU engine's)
  if (std::filesystem::is_regular_file(path, ec))
    return unsupported("model '" + path +
                       "': GGUF files run on the CPU engine (--device cpu); the CUDA engine loads "
                       "Hugging Face or SlideSparse checkpoint directories");
  SS_ASSIGN_OR_RETURN(Checkpoint ck, Checkpoint::open(path));
  const ModelConfig& c = ck.config();
  const bool ss = ck.is_slidesparse();
  if (ss && opt.sparsify.enabled)
    return invalid_argument("model '" + path +
                            "' is already a SlideSparse checkpoint: it cannot be pruned again");
  if (ss && opt.dense_quant != QuantMode::kNone)
    return invalid_argument("model '" + path +
                            "' is a SlideSparse checkpoint: its quantization is fixed (" +
                            quant_mode_name(ck.quant()) +
                            "); dense_quant applies to plain HF "
                            "checkpoints only");
  const bool nm = ss || opt.sparsify.enabled;
  const Pattern p = ss ? ck.pattern() : opt.sparsify.pattern;
  const QuantMode q =
      ss ? ck.quant() : (opt.sparsify.enabled ? opt.sparsify.quant : opt.dense_quant);
  SS_ASSIGN_OR_RETURN(
      auto m, CudaModelImpl::create(
                  c, opt, estimate_memory(c, nm, p, q, opt.mode, opt.act_dtype, opt.gemm_backend)));
  const std::vector<LinearSpec>& specs = ck.linears();
  const int64_t C = c.hidden_size;
  // Linears come 7 per layer in q, k, v, o, gate, up, down order.
  static const int kGroups[4][3] = {{0, 1, 2}, {3, -1, -1}, {4, 5, -1}, {6, -1, -1}};
  for (int64_t l = 0; l < c.num_layers; ++l) {
    for (int f = 0; f < 4; ++f) {
      std::vector<NmTensor> parts;
      std::vector<std::vector<float>> biases;
      std::vector<TensorView> dense;  // plain checkpoint, no pruning: the parts as stored
      for (int g : kGroups[f]) {
        if (g < 0) continue;
        const LinearSpec& ls = specs[static_cast<size_t>(l * 7 + g)];
        if (ls.has_bias) {
          SS_ASSIGN_OR_RETURN(std::vector<float> b, ck.tensor_f32(ls.bias_name(), {ls.N}));
          biases.push_back(std::move(b));
        }
        if (ss) {
          SS_ASSIGN_OR_RETURN(NmTensor t, ck.nm_linear(ls.name));
          parts.push_back(std::move(t));
          continue;
        }
        if (!opt.sparsify.enabled) {
          SS_ASSIGN_OR_RETURN(TensorView v, ck.view(ls.weight_name(), {ls.N, ls.K}));
          if (v.dtype != DType::kF32 && v.dtype != DType::kF16 && v.dtype != DType::kBF16 &&
              v.dtype != DType::kF8E4M3)
            return unsupported("checkpoint '" + path + "': tensor '" + ls.weight_name() +
                               "' has dtype " + dtype_name(v.dtype) +
                               ", expected a float dtype (F32, F16, BF16, F8_E4M3)");
          dense.push_back(v);
          continue;
        }
        SS_ASSIGN_OR_RETURN(std::vector<float> w, ck.tensor_f32(ls.weight_name(), {ls.N, ls.K}));
        const float* norms = nullptr;
        if (opt.sparsify.prune == PruneMethod::kWanda) {
          auto it = opt.sparsify.act_norms.find(ls.name);
          if (it == opt.sparsify.act_norms.end() || static_cast<int64_t>(it->second.size()) != ls.K)
            return invalid_argument("wanda: no activation norms of length " + std::to_string(ls.K) +
                                    " for '" + ls.name + "'");
          norms = it->second.data();
        }
        SS_ASSIGN_OR_RETURN(NmTensor t, nm_compress(w.data(), ls.N, ls.K, p, opt.sparsify.prune,
                                                    norms, q, opt.act_dtype));
        parts.push_back(std::move(t));
      }
      FusedWeight fw;
      if (nm) {
        SS_ASSIGN_OR_RETURN(fw, fuse_nm(std::move(parts), std::move(biases)));
      } else {
        // Converted straight from the mapped tensors (all cores, no fp32 copy of the weight).
        fw.K = specs[static_cast<size_t>(l * 7 + kGroups[f][0])].K;
        SS_ASSIGN_OR_RETURN(DenseWeightCodes dc, dense_weight_codes(dense, fw.K, q, opt.act_dtype));
        fw.N = dc.N;
        fw.codes = std::make_shared<const DenseWeightCodes>(std::move(dc));
        fw.bias = concat(biases);
        for (int g : kGroups[f])
          if (g >= 0) ck.store().release(specs[static_cast<size_t>(l * 7 + g)].weight_name());
      }
      SS_RETURN_IF_ERROR(m->set_linear(l, f, std::move(fw), opt.mode, q));
    }
    const std::string pre = "model.layers." + std::to_string(l) + ".";
    SS_ASSIGN_OR_RETURN(auto an, ck.tensor_f32(pre + "input_layernorm.weight", {C}));
    SS_ASSIGN_OR_RETURN(auto mn, ck.tensor_f32(pre + "post_attention_layernorm.weight", {C}));
    SS_RETURN_IF_ERROR(m->set_norms(l, an, mn));
  }
  SS_ASSIGN_OR_RETURN(auto fnorm, ck.tensor_f32("model.norm.weight", {C}));
  SS_RETURN_IF_ERROR(m->set_final_norm(fnorm));
  SS_ASSIGN_OR_RETURN(auto embed, ck.tensor_f32("model.embed_tokens.weight", {c.vocab_size, C}));
  if (c.tie_word_embeddings) {
    SS_RETURN_IF_ERROR(m->set_embeddings(embed, nullptr));
  } else {
    SS_ASSIGN_OR_RETURN(auto head, ck.tensor_f32("lm_head.weight", {c.vocab_size, C}));
    SS_RETURN_IF_ERROR(m->set_embeddings(embed, &head));
  }
  std::string desc;
  if (ss) {
    desc = std::string("SlideSparse ") + p.str() + " " + prune_method_name(ck.prune()) + " " +
           quant_mode_name(q) + ", " + linear_mode_name(opt.mode);
  } else if (opt.sparsify.enabled) {
    desc = std::string("HF pruned at load to ") + p.str() + " " +
           prune_method_name(opt.sparsify.prune) + " " + quant_mode_name(q) + ", " +
           linear_mode_name(opt.mode);
  } else {
    desc = std::string("HF dense ") +
           (q == QuantMode::kNone ? act_name(opt.act_dtype) : quant_mode_name(q));
  }
  SS_RETURN_IF_ERROR(m->finish_load(desc + ", " + act_name(opt.act_dtype) +
                                    gemm_desc(opt, nm && opt.mode != LinearMode::kDense, q)));
  return std::unique_ptr<CudaModel>(std::move(m));
}

Expected<std::unique_ptr<CudaModel>> synthetic_cuda_model(const SyntheticModelSpec& spec,
                                                          const CudaModelOptions& opt) {
  SS_ASSIGN_OR_RETURN(ModelConfig c, synth_arch_config(spec.arch));
  const bool nm = spec.pattern != "dense";
  Pattern p{2, 4};
  if (nm) {
    SS_ASSIGN_OR_RETURN(p, Pattern::parse(spec.pattern));
  }
  SS_ASSIGN_OR_RETURN(
      auto m, CudaModelImpl::create(c, opt,
                                    estimate_memory(c, nm, p, spec.quant, opt.mode, opt.act_dtype,
                                                    opt.gemm_backend)));
  const int64_t C = c.hidden_size;
  const std::vector<LinearSpec> specs = model_linears(c);
  const std::vector<FusedShape> shapes = fused_shapes(c);
  static const int kFirst[4] = {0, 3, 4, 6};  // q, o, gate, down: their bias flag
  // Each fused layer is drawn whole (its parts have the same distribution): no concatenation.
  auto draw = [&](int64_t i) {
    const int64_t l = i / 4, f = i % 4;
    const FusedShape& sh = shapes[static_cast<size_t>(f)];
    const uint64_t key =
        name_key(spec.seed, "model.layers." + std::to_string(l) + "." + kFusedNames[f]);
    FusedWeight fw;
    fw.N = sh.N;
    fw.K = sh.K;
    if (specs[static_cast<size_t>(l * 7 + kFirst[f])].has_bias)
      fw.bias = random_normal(key ^ 0xB1A5, sh.N, 0.02f);
    if (nm) {
      fw.nm = true;
      fw.t = random_nm(key, sh.N, sh.K, p, spec.quant, opt.act_dtype);
    } else {
      fw.w = random_normal(key, sh.N * sh.K, 0.02f);
    }
    return fw;
  };
  const int64_t total = 4 * c.num_layers;
  if (spec.repeat_layers) {  // layer 0's four fused weights, a copy for every layer
    std::vector<FusedWeight> first;
    for (int64_t f = 0; f < 4; ++f) {
      first.push_back(draw(f));
      FusedWeight& fw = first.back();
      if (!nm) {  // convert (quantize) once, not once per layer
        SS_ASSIGN_OR_RETURN(DenseWeightCodes dc,
                            dense_weight_codes(fw.w.data(), fw.N, fw.K, spec.quant, opt.act_dtype));
        fw.codes = std::make_shared<const DenseWeightCodes>(std::move(dc));
        fw.w = {};
      }
    }
    for (int64_t i = 0; i < total; ++i) {
      FusedWeight fw = first[static_cast<size_t>(i % 4)];
      SS_RETURN_IF_ERROR(
          m->set_linear(i / 4, static_cast<int>(i % 4), std::move(fw), opt.mode, spec.quant));
    }
  }
  // Pipelined: the host draws fused layer i + 1 (all cores) while layer i is built on the GPU.
  std::future<FusedWeight> ahead;
  if (!spec.repeat_layers) ahead = std::async(std::launch::async, draw, 0);
  for (int64_t i = 0; i < total && !spec.repeat_layers; ++i) {
    FusedWeight fw = ahead.get();
    if (i + 1 < total) ahead = std::async(std::launch::async, draw, i + 1);
    Status st = m->set_linear(i / 4, static_cast<int>(i % 4), std::move(fw), opt.mode, spec.quant);
    if (!st.ok()) {
      if (ahead.valid()) ahead.wait();
      return st;
    }
  }
  const std::vector<float> ones(static_cast<size_t>(C), 1.0f);
  for (int64_t l = 0; l < c.num_layers; ++l) SS_RETURN_IF_ERROR(m->set_norms(l, ones, ones));
  SS_RETURN_IF_ERROR(m->set_final_norm(std::vector<float>(static_cast<size_t>(C), 1.0f)));
  const std::vector<float> embed =
      random_normal(name_key(spec.seed, "model.embed_tokens.weight"), c.vocab_size * C, 0.02f);
  if (c.tie_word_embeddings) {
    SS_RETURN_IF_ERROR(m->set_embeddings(embed, nullptr));
  } else {
    const std::vector<float> head =
        random_normal(name_key(spec.seed, "lm_head.weight"), c.vocab_size * C, 0.02f);
    SS_RETURN_IF_ERROR(m->set_embeddings(embed, &head));
  }
  std::string desc = "synthetic " + spec.arch + " ";
  if (nm)
    desc += p.str() + " " + quant_mode_name(spec.quant) + ", " + linear_mode_name(opt.mode);
  else
    desc += std::string("dense ") + (spec.quant == QuantMode::kNone ? act_name(opt.act_dtype)
                                                                    : quant_mode_name(spec.quant));
  SS_RETURN_IF_ERROR(
      m->finish_load(desc + ", " + act_name(opt.act_dtype) +
                     gemm_desc(opt, nm && opt.mode != LinearMode::kDense, spec.quant)));
  return std::unique_ptr<CudaModel>(std::move(m));
}

}  // namespace cuda

Expected<std::unique_ptr<CudaModel>> CudaModel::load(const std::string& path,
                                                     const CudaModelOptions& opt) {
  return cuda::load_cuda_model(path, opt);
}

Expected<std::unique_ptr<CudaModel>> CudaModel::synthetic(const SyntheticModelSpec& spec,
                                                          const CudaModelOptions& opt) {
  return cuda::synthetic_cuda_model(spec, opt);
}

}  // namespace slidesparse
