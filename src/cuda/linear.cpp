// DenseLinear (cuBLASLt), SparseLinear (slide + cuSPARSELt) and AutoLinear: the GPU linear layer.
// W8A8 scheme, identical for dense and sparse so that their comparison is honest: the GEMM writes
// int32 (int8) or fp32 (fp8) accumulators, and our epilogue applies s_x[m] * s_w[n] + bias[n]
// exactly as the CPU reference does (see docs/kernels.md for the measured alternative).
// With GemmBackend::kCutlass (int8/fp8) both layers run CUTLASS sm90a GEMMs instead
// (gemm_cutlass.h), and forward() with bf16 activations fuses that same epilogue into the GEMM;
// with kBest a layer has both and picks per M (`cut_for`: CUTLASS from kCutlassMinM tokens).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "cuda/cuda_check.h"
#include "cuda/gemm.h"
#include "cuda/gemm_cutlass.h"
#include "cuda/kernels/epilogue.cuh"
#include "cuda/kernels/lift.cuh"
#include "cuda/kernels/quant.cuh"
#include "cuda/kernels/quant_lift.cuh"
#include "cuda/kernels/slide_build.cuh"
#include "slidesparse/linear.h"

namespace slidesparse {

// One set of forward buffers for the layers that share it (they run one after another on one
// stream): buffers only grow, so a layer's reserve stays valid when another layer grows them.
struct LinearScratch {
  cuda::DeviceBuffer xq;   // activation operand [M_pad, K_out] (quantized / lifted)
  cuda::DeviceBuffer sx;   // per-token scales [M_pad] fp32
  cuda::DeviceBuffer acc;  // GEMM accumulators [M_pad, N_ld]
  std::shared_ptr<cuda::DeviceBuffer> gemm_ws = std::make_shared<cuda::DeviceBuffer>();  // cuBLASLt
};

std::shared_ptr<LinearScratch> make_linear_scratch() {
  return std::make_shared<LinearScratch>();
}

namespace cuda {
namespace {

cudaStream_t S(void* s) {
  return static_cast<cudaStream_t>(s);
}

DType gemm_in(DType act, QuantMode q) {
  if (q == QuantMode::kInt8) return DType::kI8;
  if (q == QuantMode::kFp8) return DType::kF8E4M3;
  return act;
}

Status upload(DeviceBuffer& b, const void* host, size_t bytes, cudaStream_t s) {
  SS_RETURN_IF_ERROR(b.reserve(bytes > 0 ? bytes : 16));
  if (bytes > 0) SS_CUDA_TRY(cudaMemcpyAsync(b.get(), host, bytes, cudaMemcpyHostToDevice, s));
  return Status::Ok();
}

Status check_act(DType act) {
  if (act != DType::kBF16 && act != DType::kF16)
    return unsupported(std::string("linear: activation dtype ") + dtype_name(act) +
                       " not supported (expected BF16 or F16)");
  return Status::Ok();
}

Status check_m(int64_t M) {
  if (M <= 0 || M > (int64_t{1} << 24))
    return invalid_argument("linear: M=" + std::to_string(M) + " must be in [1, 16777216]");
  return Status::Ok();
}

// kDefault -> the environment variable `env`, else kLibrary. The variable selects CUTLASS for
// W8A8 layers only (`q8`): a model's bf16/fp16 layers (lm_head, W16A16) stay on the library,
// while an explicit kCutlass for them is an error of the caller. kBest becomes kLibrary where
// the CUTLASS path would not win: not W8A8, fp16 activations (no fused epilogue), no CUTLASS
// build, not sm_90.
Expected<GemmBackend> resolve_backend(GemmBackend b, const char* env, bool q8, DType act) {
  if (b == GemmBackend::kDefault) {
    const char* v = std::getenv(env);
    if (!v || !*v) return GemmBackend::kLibrary;
    auto r = gemm_backend_parse(v);
    if (!r.ok()) return invalid_argument(std::string(env) + ": " + r.status().message());
    b = q8 ? *r : GemmBackend::kLibrary;
  }
  if (b == GemmBackend::kBest) {
    int sm = 0;
    if (!q8 || act != DType::kBF16 || !cutlass_built() || !check_device(&sm).ok() || sm != 90)
      return GemmBackend::kLibrary;
  }
  return b == GemmBackend::kDefault ? GemmBackend::kLibrary : b;
}

// The one per-M rule of the backends: a layer of (resolved) backend b runs CUTLASS for M tokens.
bool runs_cutlass(GemmBackend b, int64_t M) {
  return b == GemmBackend::kCutlass || (b == GemmBackend::kBest && M >= kCutlassMinM);
}
// The tuning-table backend key of the GEMM such a layer runs at M.
const char* tuned_backend(GemmBackend b, bool sparse, int64_t M) {
  return runs_cutlass(b, M) ? "cutlass" : sparse ? "cusparselt" : "cublaslt";
}

// Per-channel vector [n] padded to n_pad with `fill` (the CUTLASS epilogue reads N_gemm >= N).
Status upload_padded(DeviceBuffer& b, const float* host, int64_t n, int64_t n_pad, float fill,
                     cudaStream_t s) {
  std::vector<float> v(static_cast<size_t>(n_pad), fill);
  std::memcpy(v.data(), host, static_cast<size_t>(n) * sizeof(float));
  SS_RETURN_IF_ERROR(upload(b, v.data(), v.size() * sizeof(float), s));
  SS_CUDA_TRY(cudaStreamSynchronize(s));  // v is freed next
  return Status::Ok();
}

// CUTLASS GEMM with the fused dequant + bias epilogue into y [M, N] bf16 (with `res`: y = res =
// bf16(res + that), the residual form). The kernel writes N_gemm = round_up(N, 8) columns with
// 16-byte aligned rows: other N go through `scratch` [M, ld_scratch] and a 2D copy (residual
// form: the epilogue kernel's add, the same rounding).
Status cutlass_fused_forward(GemmCutlass& g, int config, const void* xq, const float* sx,
                             const float* sw, const float* bias, void* y, int64_t M, int64_t N,
                             int64_t ld_scratch, DeviceBuffer& scratch, cudaStream_t s,
                             const void* res = nullptr) {
  CutlassEpilogue e{sx, sw, bias, res};
  if (N % 8 == 0) return g.run_fused(xq, e, y, M, N, config, s);
  e.residual = nullptr;
  SS_RETURN_IF_ERROR(scratch.reserve(static_cast<size_t>(M * ld_scratch) * 2));
  SS_RETURN_IF_ERROR(g.run_fused(xq, e, scratch.get(), M, ld_scratch, config, s));
  if (res)
    return kernels::launch_epilogue(DType::kBF16, scratch.get(), ld_scratch, nullptr, nullptr,
                                    nullptr, DType::kBF16, y, N, M, N, s, res);
  SS_CUDA_TRY(cudaMemcpy2DAsync(y, N * 2, scratch.get(), ld_scratch * 2, N * 2, M,
                                cudaMemcpyDeviceToDevice, s));
  return Status::Ok();
}

// The CUTLASS configuration of g for M tokens: the tuned one ("cutlass" entries, nearest
// bucket) when g has it, else configuration 0.
int cutlass_config(const GemmCutlass& g, const TuningTable* t, const std::string& prec,
                   const std::string& pattern, int64_t N, int64_t K, int64_t M) {
  if (t)
    if (const TuneEntry* e = t->find_nearest("cutlass", prec, pattern, N, K, M))
      if (e->algo_index >= 0 && e->algo_index < g.configs()) return e->algo_index;
  return 0;
}

Status copy_to_host(const DeviceBuffer& acc, DType t, int64_t M, int64_t N, int64_t ld, void* host,
                    cudaStream_t s) {
  size_t es = dtype_size(t);
  SS_CUDA_TRY(
      cudaMemcpy2DAsync(host, N * es, acc.get(), ld * es, N * es, M, cudaMemcpyDeviceToHost, s));
  SS_CUDA_TRY(cudaStreamSynchronize(s));
  return Status::Ok();
}

// ---- dense layer ----
class DenseLinear final : public GpuLinear {
 public:
  static Expected<std::unique_ptr<DenseLinear>> create(const void* codes, DType code_t, int64_t N,
                                                       int64_t K, QuantMode q, const float* scales,
                                                       const float* bias, const LinearConfig& cfg) {
    SS_RETURN_IF_ERROR(check_act(cfg.act_dtype));
    SS_ASSIGN_OR_RETURN(GemmBackend be,
                        resolve_backend(cfg.dense_backend, "SLIDESPARSE_DENSE_BACKEND",
                                        q != QuantMode::kNone, cfg.act_dtype));
    if (be == GemmBackend::kCutlass && q == QuantMode::kNone)
      return unsupported("dense linear: the CUTLASS backend runs int8 and fp8 only, not " +
                         precision_name(cfg.act_dtype, q));
    SS_RETURN_IF_ERROR(check_device());
    std::unique_ptr<DenseLinear> l(new DenseLinear());
    l->N_ = N;
    l->K_ = K;
    l->q_ = q;
    l->act_ = cfg.act_dtype;
    l->gin_ = gemm_in(cfg.act_dtype, q);
    l->gout_ = gemm_out_dtype(l->gin_);
    l->tuning_ = cfg.tuning;
    l->prec_ = precision_name(cfg.act_dtype, q);
    l->be_ = be;
    const bool q8 = q != QuantMode::kNone;
    const bool cut = be != GemmBackend::kLibrary;  // kCutlass or kBest
    const bool lib = be != GemmBackend::kCutlass;  // kLibrary or kBest
    l->K_al_ = cut ? round_up(K, 64) : q8 ? round_up(K, 16) : K;
    l->N_ld_ = q8 ? round_up(N, 16) : N;
    // cuBLASLt has no fp8 kernel for N % 16 != 0 (measured: N = 111 fails): the weight gets zero
    // rows up to N_ld and the GEMM computes N_ld outputs per token (the epilogue reads N).
    // CUTLASS computes round_up(N, 8) rows.
    l->N_gemm_ = q == QuantMode::kFp8 || cut ? l->N_ld_ : N;
    l->sc_ = cfg.scratch ? cfg.scratch : make_linear_scratch();
    if (lib) {
      SS_ASSIGN_OR_RETURN(l->gemm_, GemmDense::create(l->gin_, l->sc_->gemm_ws));
    }
    cudaStream_t s = S(cfg.stream);
    size_t es = dtype_size(l->gin_);
    if (code_t != l->gin_)
      return invalid_argument(std::string("dense linear: weight dtype ") + dtype_name(code_t) +
                              " does not match the GEMM dtype " + dtype_name(l->gin_));
    std::vector<uint8_t> w(static_cast<size_t>(l->N_gemm_ * l->K_al_) * es, 0);
    for (int64_t n = 0; n < N; ++n)
      std::memcpy(&w[n * l->K_al_ * es], static_cast<const uint8_t*>(codes) + n * K * es, K * es);
    SS_RETURN_IF_ERROR(upload(l->w_, w.data(), w.size(), s));
    if (q8) SS_RETURN_IF_ERROR(upload_padded(l->sw_, scales, N, l->N_ld_, 1.0f, s));
    if (bias) SS_RETURN_IF_ERROR(upload_padded(l->bias_, bias, N, l->N_ld_, 0.0f, s));
    l->has_bias_ = bias != nullptr;
    SS_CUDA_TRY(cudaStreamSynchronize(s));
    if (cut) {
      SS_ASSIGN_OR_RETURN(l->cg_, GemmCutlass::create_dense(l->gin_, N, l->K_al_, l->w_.get()));
    }
    return l;
  }

  const void* dense_weight() const override {
    return q_ == QuantMode::kNone && !cg_ && K_al_ == K_ && N_gemm_ == N_ ? w_.get() : nullptr;
  }

  std::string describe() const override {
    return std::string(!cg_    ? "dense cuBLASLt "
                       : gemm_ ? "dense cuBLASLt|CUTLASS "
                               : "dense CUTLASS ") +
           prec_ + " N=" + std::to_string(N_) + " K=" + std::to_string(K_);
  }
  // CUTLASS runs M tokens: the only GEMM, or kBest's pick for large M.
  bool cut_for(int64_t M) const { return runs_cutlass(be_, M); }

  Status reserve(int64_t M) override {
    SS_RETURN_IF_ERROR(check_m(M));
    if (M <= cap_M_) return Status::Ok();
    if (q_ != QuantMode::kNone) {
      SS_RETURN_IF_ERROR(sc_->xq.reserve(static_cast<size_t>(M * K_al_)));
      SS_RETURN_IF_ERROR(sc_->sx.reserve(static_cast<size_t>(M) * sizeof(float)));
    }
    SS_RETURN_IF_ERROR(sc_->acc.reserve(static_cast<size_t>(M * N_ld_) * dtype_size(gout_)));
    cap_M_ = M;
    return Status::Ok();
  }

  Status run_prologue(const void* x, int64_t M, void* stream) override {
    SS_RETURN_IF_ERROR(reserve(M));
    x_ = x;
    if (q_ == QuantMode::kNone) return Status::Ok();
    return kernels::launch_quantize(act_, q_, x, M, K_, sc_->xq.get(), M, K_al_,
                                    sc_->sx.as<float>(), S(stream));
  }

  Status gemm_into(void* d, int64_t M, void* stream) {
    if (cut_for(M))  // d == sc_->acc
      return cg_->run(sc_->xq.get(), d, M, N_ld_,
                      cutlass_config(*cg_, tuning_, prec_, "dense", N_, K_, M), S(stream));
    const void* xin = q_ == QuantMode::kNone ? x_ : sc_->xq.get();
    int algo = -1;
    if (tuning_)
      if (const TuneEntry* e = tuning_->find_nearest("cublaslt", prec_, "dense", N_, K_, M))
        algo = e->algo_index;
    return gemm_->run(w_.get(), xin, d, M, N_gemm_, K_al_, d == sc_->acc.get() ? N_ld_ : N_, algo,
                      S(stream));
  }

  Status run_gemm(int64_t M, void* stream) override {
    SS_RETURN_IF_ERROR(reserve(M));
    return gemm_into(sc_->acc.get(), M, stream);
  }

  Status run_epilogue(void* y, int64_t M, void* stream) override {
    return epilogue_into(y, nullptr, M, stream);
  }
  Status epilogue_into(void* y, const void* res, int64_t M, void* stream) {
    const bool q8 = q_ != QuantMode::kNone;
    return kernels::launch_epilogue(
        gout_, sc_->acc.get(), N_ld_, q8 ? sc_->sx.as<float>() : nullptr,
        q8 ? sw_.as<float>() : nullptr, has_bias_ ? bias_.as<float>() : nullptr, act_, y, N_, M, N_,
        S(stream), res);
  }

  // CUTLASS with bf16 activations: GEMM + dequant + bias (+ residual) in one kernel.
  bool fused(int64_t M) const { return cut_for(M) && act_ == DType::kBF16; }
  Status run_fused(void* y, int64_t M, void* stream, const void* res = nullptr) {
    return cutlass_fused_forward(*cg_, cutlass_config(*cg_, tuning_, prec_, "dense", N_, K_, M),
                                 sc_->xq.get(), sc_->sx.as<float>(), sw_.as<float>(),
                                 has_bias_ ? bias_.as<float>() : nullptr, y, M, N_, N_ld_,
                                 yscratch_, S(stream), res);
  }

  bool fuses_residual() const override { return q_ != QuantMode::kNone; }
  Status forward_prepared_residual(void* res, int64_t M, void* stream) override {
    if (!fuses_residual()) return GpuLinear::forward_prepared_residual(res, M, stream);
    SS_RETURN_IF_ERROR(reserve(M));
    if (fused(M)) return run_fused(res, M, stream, res);
    SS_RETURN_IF_ERROR(gemm_into(sc_->acc.get(), M, stream));
    return epilogue_into(res, res, M, stream);
  }

  Status forward(const void* x, void* y, int64_t M, void* stream) override {
    SS_RETURN_IF_ERROR(run_prologue(x, M, stream));
    if (fused(M)) return run_fused(y, M, stream);
    if (q_ == QuantMode::kNone) {
      // W16A16: the GEMM writes y; a bias is added in place.
      SS_RETURN_IF_ERROR(gemm_into(y, M, stream));
      if (!has_bias_) return Status::Ok();
      return kernels::launch_epilogue(act_, y, N_, nullptr, nullptr, bias_.as<float>(), act_, y, N_,
                                      M, N_, S(stream));
    }
    SS_RETURN_IF_ERROR(gemm_into(sc_->acc.get(), M, stream));
    return run_epilogue(y, M, stream);
  }

  Expected<InputSlot> input_slot(int64_t M) override {
    SS_RETURN_IF_ERROR(reserve(M));
    InputSlot s;
    s.dtype = gin_;
    s.quant = q_;
    if (q_ == QuantMode::kNone) return s;  // W16A16: the GEMM reads x itself
    s.codes = sc_->xq.get();
    s.scales = sc_->sx.as<float>();
    s.M_pad = M;
    s.K_out = K_al_;
    return s;
  }
  Status forward_prepared(void* y, int64_t M, void* stream) override {
    if (q_ == QuantMode::kNone)
      return unsupported("dense W16A16 linear has no prologue to fuse: call forward");
    SS_RETURN_IF_ERROR(reserve(M));
    if (fused(M)) return run_fused(y, M, stream);
    SS_RETURN_IF_ERROR(gemm_into(sc_->acc.get(), M, stream));
    return run_epilogue(y, M, stream);
  }

  Status copy_accumulators(int64_t M, void* host, void* stream) override {
    return copy_to_host(sc_->acc, gout_, M, N_, N_ld_, host, S(stream));
  }

  Expected<int> gemm_configs(int64_t M) override {
    if (cut_for(M)) return cg_->configs();
    return gemm_->candidates(M, N_gemm_, K_al_, N_ld_, 16);
  }
  TuneEntry config(int64_t M, int index, int) const override {
    TuneEntry e{
        cut_for(M) ? "cutlass" : "cublaslt", prec_, "dense", N_, K_, TuningTable::bucket(M)};
    e.algo_index = index;
    return e;
  }
  Status run_gemm_config(int64_t M, const TuneEntry* e, void* stream) override {
    SS_RETURN_IF_ERROR(reserve(M));
    if (cut_for(M))
      return cg_->run(sc_->xq.get(), sc_->acc.get(), M, N_ld_,
                      e ? e->algo_index : cutlass_config(*cg_, tuning_, prec_, "dense", N_, K_, M),
                      S(stream));
    const void* xin = q_ == QuantMode::kNone ? x_ : sc_->xq.get();
    return gemm_->run(w_.get(), xin, sc_->acc.get(), M, N_gemm_, K_al_, N_ld_,
                      e ? e->algo_index : -1, S(stream));
  }
  Expected<TuneEntry> search_gemm(int64_t, void*) override {
    return unsupported("dense linear: no library search (use the heuristic candidates)");
  }

 private:
  DenseLinear() = default;
  DType act_ = DType::kBF16, gin_ = DType::kBF16, gout_ = DType::kBF16;
  int64_t K_al_ = 0, N_ld_ = 0, N_gemm_ = 0, cap_M_ = 0;
  bool has_bias_ = false;
  const TuningTable* tuning_ = nullptr;
  std::string prec_;
  GemmBackend be_ = GemmBackend::kLibrary;  // resolved: kLibrary, kCutlass or kBest
  const void* x_ = nullptr;
  std::unique_ptr<GemmDense> gemm_;
  std::unique_ptr<GemmCutlass> cg_;  // the CUTLASS GEMM over w_ (kCutlass: gemm_ is null)
  DeviceBuffer w_, sw_, bias_, yscratch_;
  std::shared_ptr<LinearScratch> sc_;
};

// ---- sparse layer ----
class SparseLinear final : public GpuLinear {
 public:
  static Expected<std::unique_ptr<SparseLinear>> create(const NmTensor& w, const float* bias,
                                                        const LinearConfig& cfg) {
    SS_RETURN_IF_ERROR(check_act(cfg.act_dtype));
    SS_RETURN_IF_ERROR(nm_verify(w));
    const QuantMode q = w.quant();
    const DType gin = gemm_in(cfg.act_dtype, q);
    if (w.value_dtype != gin)
      return invalid_argument(std::string("sparse linear: n:m values are ") +
                              dtype_name(w.value_dtype) + ", expected " + dtype_name(gin) +
                              " for activations " + dtype_name(cfg.act_dtype));
    if (q != QuantMode::kNone && static_cast<int64_t>(w.scales.size()) != w.N)
      return invalid_argument("sparse linear: weight_scale has " + std::to_string(w.scales.size()) +
                              " entries, expected " + std::to_string(w.N));
    SS_ASSIGN_OR_RETURN(GemmBackend be,
                        resolve_backend(cfg.sparse_backend, "SLIDESPARSE_SPARSE_BACKEND",
                                        q != QuantMode::kNone, cfg.act_dtype));
    const bool cut = be != GemmBackend::kLibrary;  // kCutlass or kBest
    const bool lib = be != GemmBackend::kCutlass;  // kLibrary or kBest
    if (be == GemmBackend::kCutlass && q == QuantMode::kNone)
      return unsupported("sparse linear: the CUTLASS backend runs int8 and fp8 only, not " +
                         precision_name(cfg.act_dtype, q));
    SS_RETURN_IF_ERROR(check_device());
    std::unique_ptr<SparseLinear> l(new SparseLinear());
    l->N_ = w.N;
    l->K_ = w.K;
    l->q_ = q;
    l->p_ = w.pattern;
    l->act_ = cfg.act_dtype;
    l->gin_ = gin;
    l->gout_ = gemm_out_dtype(gin);
    l->tuning_ = cfg.tuning;
    l->prec_ = precision_name(cfg.act_dtype, q);
    l->be_ = be;
    l->align_ = gemm_align(gin);
    // CUTLASS: K' padded to 64 (whole sparse metadata blocks of 8-bit operands).
    l->K_out_ = w.pattern.k_lifted_aligned(w.K, cut ? 64 : l->align_);
    l->N_pad_ = round_up(w.N, l->align_);
    l->sc_ = cfg.scratch ? cfg.scratch : make_linear_scratch();
    cudaStream_t s = S(cfg.stream);
    DeviceBuffer vals, masks, wslided;
    SS_RETURN_IF_ERROR(upload(vals, w.values.data(), w.values.size(), s));
    SS_RETURN_IF_ERROR(upload(masks, w.masks.data(), w.masks.size() * sizeof(uint16_t), s));
    SS_RETURN_IF_ERROR(
        wslided.reserve(static_cast<size_t>(l->N_pad_ * l->K_out_) * dtype_size(gin)));
    SS_RETURN_IF_ERROR(kernels::launch_slide_build(gin, w.pattern, vals.get(), masks.as<uint16_t>(),
                                                   w.N, w.K, wslided.get(), l->N_pad_, l->K_out_,
                                                   s));
    // kBest: both compressed weights from the one slided operand (the formats differ).
    if (cut) {
      SS_ASSIGN_OR_RETURN(
          l->cg_, GemmCutlass::create_sparse(gin, w.N, l->K_out_, l->K_out_, wslided.get(), s));
    }
    if (lib) {
      SS_ASSIGN_OR_RETURN(l->gemm_,
                          GemmSparse24::create(gin, l->N_pad_, l->K_out_, wslided.get(), s));
    }
    if (q != QuantMode::kNone)
      SS_RETURN_IF_ERROR(upload_padded(l->sw_, w.scales.data(), w.N, l->N_pad_, 1.0f, s));
    if (bias) SS_RETURN_IF_ERROR(upload_padded(l->bias_, bias, w.N, l->N_pad_, 0.0f, s));
    l->has_bias_ = bias != nullptr;
    SS_CUDA_TRY(cudaStreamSynchronize(s));
    return l;
  }

  std::string describe() const override {
    return std::string(!cg_    ? "sparse cuSPARSELt "
                       : gemm_ ? "sparse cuSPARSELt|CUTLASS "
                               : "sparse CUTLASS ") +
           prec_ + " " + p_.str() + " N=" + std::to_string(N_) + " K=" + std::to_string(K_) +
           " K'=" + std::to_string(K_out_);
  }
  int64_t k_lifted() const { return K_out_; }
  // CUTLASS runs M tokens: the only GEMM, or kBest's pick for large M.
  bool cut_for(int64_t M) const { return runs_cutlass(be_, M); }

  Status reserve(int64_t M) override {
    SS_RETURN_IF_ERROR(check_m(M));
    int64_t Mp = round_up(M, align_);
    if (Mp <= cap_M_) return Status::Ok();
    SS_RETURN_IF_ERROR(sc_->xq.reserve(static_cast<size_t>(Mp * K_out_) * dtype_size(gin_)));
    SS_RETURN_IF_ERROR(sc_->sx.reserve(static_cast<size_t>(Mp) * sizeof(float)));
    SS_RETURN_IF_ERROR(sc_->acc.reserve(static_cast<size_t>(Mp * N_pad_) * dtype_size(gout_)));
    cap_M_ = Mp;
    return Status::Ok();
  }

  SparseAlgo algo_for(int64_t M) const {
    SparseAlgo a;
    if (tuning_)
      if (const TuneEntry* e = tuning_->find_nearest("cusparselt", prec_, p_.str(), N_, K_, M)) {
        a.alg_id = e->alg_id;
        a.split_k = e->split_k;
        a.split_k_mode = e->split_k_mode;
        a.split_k_buffers = e->split_k_buffers;
      }
    return a;
  }

  Status run_prologue(const void* x, int64_t M, void* stream) override {
    SS_RETURN_IF_ERROR(reserve(M));
    int64_t Mp = round_up(M, align_);
    if (q_ == QuantMode::kNone)
      return kernels::launch_lift(act_, p_, x, M, K_, sc_->xq.get(), Mp, K_out_, S(stream));
    return kernels::launch_quant_lift(act_, q_, p_, x, M, K_, sc_->xq.get(), Mp, K_out_,
                                      sc_->sx.as<float>(), S(stream));
  }

  Status gemm_into(void* d, int64_t M, void* stream) {
    if (cut_for(M))  // d == sc_->acc
      return cg_->run(sc_->xq.get(), d, M, N_pad_,
                      cutlass_config(*cg_, tuning_, prec_, p_.str(), N_, K_, M), S(stream));
    return gemm_->run(sc_->xq.get(), d, round_up(M, align_), algo_for(M), S(stream));
  }
  Status run_gemm(int64_t M, void* stream) override {
    SS_RETURN_IF_ERROR(reserve(M));
    return gemm_into(sc_->acc.get(), M, stream);
  }

  Status run_epilogue(void* y, int64_t M, void* stream) override {
    return epilogue_into(y, nullptr, M, stream);
  }
  Status epilogue_into(void* y, const void* res, int64_t M, void* stream) {
    const bool q8 = q_ != QuantMode::kNone;
    return kernels::launch_epilogue(
        gout_, sc_->acc.get(), N_pad_, q8 ? sc_->sx.as<float>() : nullptr,
        q8 ? sw_.as<float>() : nullptr, has_bias_ ? bias_.as<float>() : nullptr, act_, y, N_, M, N_,
        S(stream), res);
  }

  Status forward(const void* x, void* y, int64_t M, void* stream) override {
    SS_RETURN_IF_ERROR(run_prologue(x, M, stream));
    return forward_prepared(y, M, stream);
  }
  Expected<InputSlot> input_slot(int64_t M) override {
    SS_RETURN_IF_ERROR(reserve(M));
    InputSlot s;
    s.codes = sc_->xq.get();
    s.scales = q_ == QuantMode::kNone ? nullptr : sc_->sx.as<float>();
    s.M_pad = round_up(M, align_);
    s.K_out = K_out_;
    s.dtype = gin_;
    s.quant = q_;
    s.lifted = true;
    s.lift = p_;
    return s;
  }
  bool fuses_residual() const override { return q_ != QuantMode::kNone; }
  Status forward_prepared_residual(void* res, int64_t M, void* stream) override {
    if (!fuses_residual()) return GpuLinear::forward_prepared_residual(res, M, stream);
    SS_RETURN_IF_ERROR(reserve(M));
    if (cut_for(M) && act_ == DType::kBF16) return run_fused(res, M, stream, res);
    SS_RETURN_IF_ERROR(gemm_into(sc_->acc.get(), M, stream));
    return epilogue_into(res, res, M, stream);
  }
  // CUTLASS: GEMM + dequant + bias (+ residual) in one kernel.
  Status run_fused(void* y, int64_t M, void* stream, const void* res = nullptr) {
    return cutlass_fused_forward(*cg_, cutlass_config(*cg_, tuning_, prec_, p_.str(), N_, K_, M),
                                 sc_->xq.get(), sc_->sx.as<float>(), sw_.as<float>(),
                                 has_bias_ ? bias_.as<float>() : nullptr, y, M, N_, N_pad_,
                                 yscratch_, S(stream), res);
  }
  Status forward_prepared(void* y, int64_t M, void* stream) override {
    SS_RETURN_IF_ERROR(reserve(M));
    if (cut_for(M) && act_ == DType::kBF16) return run_fused(y, M, stream);
    if (!cut_for(M) && q_ == QuantMode::kNone && !has_bias_ && N_ == N_pad_ && M % align_ == 0)
      return gemm_into(y, M, stream);  // W16A16 with no padding: the GEMM writes y directly
    SS_RETURN_IF_ERROR(gemm_into(sc_->acc.get(), M, stream));
    return run_epilogue(y, M, stream);
  }

  Status copy_accumulators(int64_t M, void* host, void* stream) override {
    return copy_to_host(sc_->acc, gout_, M, N_, N_pad_, host, S(stream));
  }

  Expected<int> gemm_configs(int64_t M) override {
    SS_RETURN_IF_ERROR(reserve(M));
    if (cut_for(M)) return cg_->configs();
    SS_ASSIGN_OR_RETURN(int max_id, gemm_->max_alg_id(round_up(M, align_)));
    return max_id + 1;
  }
  TuneEntry config(int64_t M, int index, int split_k) const override {
    TuneEntry e{
        cut_for(M) ? "cutlass" : "cusparselt", prec_, p_.str(), N_, K_, TuningTable::bucket(M)};
    if (cut_for(M)) {
      e.algo_index = index;  // the CUTLASS configuration
      return e;
    }
    e.alg_id = index;
    e.split_k = split_k;
    return e;
  }
  Status run_gemm_config(int64_t M, const TuneEntry* e, void* stream) override {
    SS_RETURN_IF_ERROR(reserve(M));
    if (cut_for(M))
      return cg_->run(sc_->xq.get(), sc_->acc.get(), M, N_pad_,
                      e ? e->algo_index : cutlass_config(*cg_, tuning_, prec_, p_.str(), N_, K_, M),
                      S(stream));
    SparseAlgo a;
    if (e) a = SparseAlgo{e->alg_id, e->split_k, e->split_k_mode, e->split_k_buffers};
    return gemm_->run(sc_->xq.get(), sc_->acc.get(), round_up(M, align_), a, S(stream));
  }
  Expected<TuneEntry> search_gemm(int64_t M, void* stream) override {
    SS_RETURN_IF_ERROR(reserve(M));
    if (cut_for(M))
      return unsupported("sparse CUTLASS linear: no library search (time the configurations)");
    // Measured on H100 + cuSPARSELt 0.8.0: the search on fp16 operands fails with
    // CUSPARSE_STATUS_INTERNAL_ERROR and leaves the CUDA context unusable. Never call it there.
    if (gin_ == DType::kF16)
      return unsupported(
          "cusparseLtMatmulSearch is disabled for fp16 (breaks the context on "
          "cuSPARSELt 0.8.0)");
    SS_ASSIGN_OR_RETURN(
        SparseAlgo a, gemm_->search(sc_->xq.get(), sc_->acc.get(), round_up(M, align_), S(stream)));
    TuneEntry e = config(M, a.alg_id, a.split_k);
    e.split_k_mode = a.split_k_mode;
    e.split_k_buffers = a.split_k_buffers;
    return e;
  }

 private:
  SparseLinear() = default;
  Pattern p_;
  DType act_ = DType::kBF16, gin_ = DType::kBF16, gout_ = DType::kBF16;
  int64_t align_ = 16, K_out_ = 0, N_pad_ = 0, cap_M_ = 0;
  bool has_bias_ = false;
  const TuningTable* tuning_ = nullptr;
  std::string prec_;
  GemmBackend be_ = GemmBackend::kLibrary;  // resolved: kLibrary, kCutlass or kBest
  std::unique_ptr<GemmSparse24> gemm_;
  std::unique_ptr<GemmCutlass> cg_;  // the CUTLASS GEMM (kCutlass: gemm_ is null)
  DeviceBuffer sw_, bias_, yscratch_;
  std::shared_ptr<LinearScratch> sc_;
};

// ---- auto layer ----
class AutoLinear final : public GpuLinear {
 public:
  // At least one of dense / sparse; both need the tuning table t. bs / bd: the effective
  // backends of the sparse / dense layers (their tuning entries decide).
  AutoLinear(std::unique_ptr<GpuLinear> dense, std::unique_ptr<GpuLinear> sparse, Pattern p,
             std::string prec, const TuningTable* t, GemmBackend bs, GemmBackend bd)
      : dense_(std::move(dense)),
        sparse_(std::move(sparse)),
        p_(p),
        prec_(std::move(prec)),
        tuning_(t),
        bs_(bs),
        bd_(bd) {
    const GpuLinear& any = dense_ ? *dense_ : *sparse_;
    N_ = any.N();
    K_ = any.K();
    q_ = any.quant();
  }
  // Sparse only where the tuning data (nearest tuned bucket) says its GEMM beats the dense one.
  // A layer that the data never (always) picks is not built: then the other one runs every M.
  GpuLinear* pick(int64_t M) const {
    if (!sparse_) return dense_.get();
    if (!dense_) return sparse_.get();
    return tuning_->prefer_sparse(prec_, p_.str(), N_, K_, M, tuned_backend(bs_, true, M),
                                  tuned_backend(bd_, false, M))
               ? sparse_.get()
               : dense_.get();
  }
  std::string describe() const override {
    return "auto(" + (dense_ ? dense_->describe() : std::string("-")) + " | " +
           (sparse_ ? sparse_->describe() : std::string("-")) + ")";
  }
  Status reserve(int64_t M) override { return pick(M)->reserve(M); }
  Status forward(const void* x, void* y, int64_t M, void* s) override {
    return pick(M)->forward(x, y, M, s);
  }
  Status run_prologue(const void* x, int64_t M, void* s) override {
    return pick(M)->run_prologue(x, M, s);
  }
  Status run_gemm(int64_t M, void* s) override { return pick(M)->run_gemm(M, s); }
  Status run_epilogue(void* y, int64_t M, void* s) override {
    return pick(M)->run_epilogue(y, M, s);
  }
  Expected<InputSlot> input_slot(int64_t M) override { return pick(M)->input_slot(M); }
  Status forward_prepared(void* y, int64_t M, void* s) override {
    return pick(M)->forward_prepared(y, M, s);
  }
  bool fuses_residual() const override { return q_ != QuantMode::kNone; }
  Status forward_prepared_residual(void* res, int64_t M, void* s) override {
    return pick(M)->forward_prepared_residual(res, M, s);
  }
  Status copy_accumulators(int64_t M, void* host, void* s) override {
    return pick(M)->copy_accumulators(M, host, s);
  }
  Expected<int> gemm_configs(int64_t M) override { return pick(M)->gemm_configs(M); }
  TuneEntry config(int64_t M, int i, int k) const override { return pick(M)->config(M, i, k); }
  Status run_gemm_config(int64_t M, const TuneEntry* e, void* s) override {
    return pick(M)->run_gemm_config(M, e, s);
  }
  Expected<TuneEntry> search_gemm(int64_t M, void* s) override {
    return pick(M)->search_gemm(M, s);
  }
  bool uses_sparse(int64_t M) const { return pick(M) == sparse_.get(); }

 private:
  std::unique_ptr<GpuLinear> dense_, sparse_;
  Pattern p_;
  std::string prec_;
  const TuningTable* tuning_;
  GemmBackend bs_, bd_;
};

}  // namespace
}  // namespace cuda

namespace {
// fn(r0, r1) over row chunks of [0, N) on all cores (a model's lm_head is ~1e9 elements); callers
// do per-row work, so results do not depend on the split.
template <class Fn>
void for_row_chunks(int64_t N, Fn&& fn) {
  const int64_t threads =
      std::min<int64_t>({16, std::max<int64_t>(1, std::thread::hardware_concurrency()),
                         std::max<int64_t>(1, N / 64)});
  std::vector<std::thread> pool;
  for (int64_t i = 0; i < threads; ++i) {
    const int64_t r0 = N * i / threads, r1 = N * (i + 1) / threads;
    if (r1 > r0) pool.emplace_back([&fn, r0, r1] { fn(r0, r1); });
  }
  for (std::thread& th : pool) th.join();
}
}  // namespace

namespace {
// The codes of an [N, K] weight, allocated (N, K > 0 and act checked by the callers).
DenseWeightCodes new_codes(int64_t N, int64_t K, QuantMode q, DType act_dtype) {
  DenseWeightCodes out;
  out.dtype = cuda::gemm_in(act_dtype, q);
  out.N = N;
  out.K = K;
  out.quant = q;
  out.scales.resize(q == QuantMode::kNone ? 0 : N);
  out.codes.resize(static_cast<size_t>(N * K) * dtype_size(out.dtype));
  return out;
}

// Rows r0 .. r0 + rows of out from their fp32 values f: converted, or quantized per row.
bool encode_rows(DenseWeightCodes& out, const float* f, int64_t r0, int64_t rows) {
  const int64_t K = out.K;
  uint8_t* codes = out.codes.data() + static_cast<size_t>(r0 * K) * dtype_size(out.dtype);
  if (out.quant == QuantMode::kNone) return convert_from_f32(out.dtype, f, codes, rows * K).ok();
  quantize_rows(out.quant, f, rows, K, codes, out.scales.data() + r0);
  return true;
}
}  // namespace

Expected<DenseWeightCodes> dense_weight_codes(const float* w, int64_t N, int64_t K, QuantMode q,
                                              DType act_dtype) {
  if (N <= 0 || K <= 0)
    return invalid_argument("dense linear: weight shape [" + std::to_string(N) + "," +
                            std::to_string(K) + "] must be positive");
  SS_RETURN_IF_ERROR(cuda::check_act(act_dtype));
  DenseWeightCodes out = new_codes(N, K, q, act_dtype);
  std::atomic<bool> bad{false};
  for_row_chunks(N, [&](int64_t r0, int64_t r1) {
    if (!encode_rows(out, w + r0 * K, r0, r1 - r0)) bad = true;
  });
  if (bad)
    return internal_error("dense linear: weight conversion to " +
                          std::string(dtype_name(out.dtype)) + " failed");
  return out;
}

Expected<DenseWeightCodes> dense_weight_codes(const std::vector<TensorView>& parts, int64_t K,
                                              QuantMode q, DType act_dtype) {
  std::vector<int64_t> first;  // first row of each part
  int64_t N = 0;
  for (const TensorView& p : parts) {
    const bool fl = p.dtype == DType::kF32 || p.dtype == DType::kF16 || p.dtype == DType::kBF16 ||
                    p.dtype == DType::kF8E4M3;
    if (!fl || p.shape.size() != 2 || p.shape[0] <= 0 || p.shape[1] != K ||
        p.nbytes != static_cast<size_t>(p.numel()) * dtype_size(p.dtype))
      return invalid_argument("dense linear: part " + std::string(dtype_name(p.dtype)) + " " +
                              shape_str(p.shape) + " is not [*, " + std::to_string(K) +
                              "] float rows");
    first.push_back(N);
    N += p.shape[0];
  }
  if (N <= 0 || K <= 0)
    return invalid_argument("dense linear: weight shape [" + std::to_string(N) + "," +
                            std::to_string(K) + "] must be positive");
  SS_RETURN_IF_ERROR(cuda::check_act(act_dtype));
  DenseWeightCodes out = new_codes(N, K, q, act_dtype);
  std::atomic<bool> bad{false};
  for_row_chunks(N, [&](int64_t r0, int64_t r1) {
    // Blocks of <= 2^20 elements (a 4 MB fp32 scratch per thread), never across parts.
    const int64_t block = std::max<int64_t>(1, (int64_t{1} << 20) / K);
    std::vector<float> f(static_cast<size_t>(std::min(block, r1 - r0) * K));
    for (int64_t b0 = r0; b0 < r1;) {
      const size_t pi =
          static_cast<size_t>(std::upper_bound(first.begin(), first.end(), b0) - first.begin()) - 1;
      const TensorView& p = parts[pi];
      const int64_t b1 = std::min({r1, b0 + block, first[pi] + p.shape[0]});
      const auto* src = static_cast<const uint8_t*>(p.data) +
                        static_cast<size_t>((b0 - first[pi]) * K) * dtype_size(p.dtype);
      if (!convert_to_f32(p.dtype, src, f.data(), (b1 - b0) * K).ok() ||
          !encode_rows(out, f.data(), b0, b1 - b0))
        bad = true;
      b0 = b1;
    }
  });
  if (bad)
    return internal_error("dense linear: weight conversion to " +
                          std::string(dtype_name(out.dtype)) + " failed");
  return out;
}

Expected<GemmBackend> effective_gemm_backend(GemmBackend b, bool sparse, QuantMode q, DType act) {
  return cuda::resolve_backend(b,
                               sparse ? "SLIDESPARSE_SPARSE_BACKEND" : "SLIDESPARSE_DENSE_BACKEND",
                               q != QuantMode::kNone, act);
}

Expected<std::unique_ptr<GpuLinear>> make_dense_linear(const DenseWeightCodes& w, const float* bias,
                                                       const LinearConfig& cfg) {
  if (w.N <= 0 || w.K <= 0 ||
      w.codes.size() != static_cast<size_t>(w.N * w.K) * dtype_size(w.dtype) ||
      w.scales.size() != (w.quant == QuantMode::kNone ? 0u : static_cast<size_t>(w.N)))
    return invalid_argument("dense linear: converted weight [" + std::to_string(w.N) + "," +
                            std::to_string(w.K) + "] has inconsistent codes or scales");
  SS_ASSIGN_OR_RETURN(auto l, cuda::DenseLinear::create(w.codes.data(), w.dtype, w.N, w.K, w.quant,
                                                        w.scales.data(), bias, cfg));
  return std::unique_ptr<GpuLinear>(std::move(l));
}

Expected<std::unique_ptr<GpuLinear>> make_dense_linear(const float* w, int64_t N, int64_t K,
                                                       QuantMode q, const float* bias,
                                                       const LinearConfig& cfg) {
  SS_ASSIGN_OR_RETURN(DenseWeightCodes c, dense_weight_codes(w, N, K, q, cfg.act_dtype));
  return make_dense_linear(c, bias, cfg);
}

Expected<std::unique_ptr<GpuLinear>> make_dense_linear(const NmTensor& w, const float* bias,
                                                       const LinearConfig& cfg) {
  SS_RETURN_IF_ERROR(nm_verify(w));
  std::vector<uint8_t> dense(static_cast<size_t>(w.N * w.K) * dtype_size(w.value_dtype));
  for_row_chunks(w.N, [&](int64_t r0, int64_t r1) { nm_unpack_rows(w, r0, r1, dense.data()); });
  SS_ASSIGN_OR_RETURN(auto l, cuda::DenseLinear::create(dense.data(), w.value_dtype, w.N, w.K,
                                                        w.quant(), w.scales.data(), bias, cfg));
  return std::unique_ptr<GpuLinear>(std::move(l));
}

Expected<std::unique_ptr<GpuLinear>> make_sparse_linear(const NmTensor& w, const float* bias,
                                                        const LinearConfig& cfg) {
  SS_ASSIGN_OR_RETURN(auto l, cuda::SparseLinear::create(w, bias, cfg));
  return std::unique_ptr<GpuLinear>(std::move(l));
}

Expected<std::unique_ptr<GpuLinear>> make_auto_linear(const NmTensor& w, const float* bias,
                                                      const LinearConfig& cfg) {
  const std::string prec = precision_name(cfg.act_dtype, w.quant());
  SS_ASSIGN_OR_RETURN(GemmBackend bs,
                      effective_gemm_backend(cfg.sparse_backend, true, w.quant(), cfg.act_dtype));
  SS_ASSIGN_OR_RETURN(GemmBackend bd,
                      effective_gemm_backend(cfg.dense_backend, false, w.quant(), cfg.act_dtype));
  // Which layers some M bucket (1 .. 65536) picks: only those are built (memory, load time).
  bool any_sparse = false, any_dense = cfg.tuning == nullptr;
  for (int64_t M = 1; cfg.tuning && M <= 65536; M *= 2) {
    const bool sp = cfg.tuning->prefer_sparse(prec, w.pattern.str(), w.N, w.K, M,
                                              cuda::tuned_backend(bs, true, M),
                                              cuda::tuned_backend(bd, false, M));
    any_sparse = any_sparse || sp;
    any_dense = any_dense || !sp;
  }
  std::unique_ptr<GpuLinear> d, s;
  if (any_dense) {
    SS_ASSIGN_OR_RETURN(d, make_dense_linear(w, bias, cfg));
  }
  if (any_sparse) {
    SS_ASSIGN_OR_RETURN(s, make_sparse_linear(w, bias, cfg));
  }
  return std::unique_ptr<GpuLinear>(
      new cuda::AutoLinear(std::move(d), std::move(s), w.pattern, prec, cfg.tuning, bs, bd));
}

Status GpuLinear::forward_residual(const void* x, void* res, int64_t M, void* stream) {
  if (!fuses_residual())
    return unsupported(describe() + ": no residual epilogue (W8A8 layers only): call forward");
  SS_RETURN_IF_ERROR(run_prologue(x, M, stream));
  return forward_prepared_residual(res, M, stream);
}
Status GpuLinear::forward_prepared_residual(void*, int64_t, void*) {
  return unsupported(describe() + ": no residual epilogue (W8A8 layers only): call forward");
}

Expected<std::unique_ptr<GpuLinear>> make_linear(LinearMode mode, const NmTensor& w,
                                                 const float* bias, const LinearConfig& cfg) {
  if (mode == LinearMode::kDense) return make_dense_linear(w, bias, cfg);
  if (mode == LinearMode::kSparse) return make_sparse_linear(w, bias, cfg);
  return make_auto_linear(w, bias, cfg);
}

}  // namespace slidesparse
