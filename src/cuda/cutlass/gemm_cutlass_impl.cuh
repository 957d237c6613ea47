// The CUTLASS 3.x sm_90a GEMM templates behind gemm_cutlass.h: one configuration (tile, cluster,
// schedule) instantiated three times, GEMM only (D = accumulators), fused (an epilogue visitor
// tree computing bf16(((acc * s_x[token]) * s_w[channel]) + bias[channel])) and fused with a
// residual (C = r, bf16: D = bf16(r + that bf16)). Included by one .cu per dtype x kind (compile
// time: each instantiation costs about a minute of nvcc).
// CUTLASS coordinates: M = output channels (the weight, A, K-major), N = tokens (B = X, K-major),
// D column-major M x N = row-major [tokens, ldd].
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>

#include "cuda/cuda_check.h"
#include "cuda/gemm_cutlass.h"

// clang-format off
#include "cutlass/cutlass.h"
#include "cute/tensor.hpp"
#include "cutlass/epilogue/collective/collective_builder.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_compute_tma_warpspecialized.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_load_tma_warpspecialized.hpp"
#include "cutlass/epilogue/fusion/sm90_visitor_tma_warpspecialized.hpp"
#include "cutlass/gemm/collective/collective_builder.hpp"
#include "cutlass/gemm/device/gemm_universal_adapter.h"
#include "cutlass/gemm/dispatch_policy.hpp"
#include "cutlass/gemm/kernel/gemm_universal.hpp"
#include "cutlass/transform/device/transform_universal_adapter.hpp"
#include "cutlass/transform/kernel/sparse_gemm_compressor.hpp"
// clang-format on

namespace slidesparse::cuda::cutlass_impl {

using namespace cute;

inline Status cutlass_status(cutlass::Status s, const char* what) {
  if (s == cutlass::Status::kSuccess) return Status::Ok();
  return {StatusCode::kCudaError,
          std::string("CUTLASS ") + what + " failed: " + cutlassGetStatusString(s)};
}

// Epilogue functors with explicit fp32 rounding (no FMA contraction), matching
// kernels/epilogue.cu and the CPU reference bit for bit on equal accumulators.
template <class T>
struct MulRn {
  CUTLASS_HOST_DEVICE T operator()(T const& a, T const& b) const { return a * b; }
};
template <int N>
struct MulRn<cutlass::Array<float, N>> {
  CUTLASS_DEVICE cutlass::Array<float, N> operator()(cutlass::Array<float, N> const& a,
                                                     cutlass::Array<float, N> const& b) const {
    cutlass::Array<float, N> r;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) r[i] = __fmul_rn(a[i], b[i]);
    return r;
  }
};
template <class T>
struct AddRn {
  CUTLASS_HOST_DEVICE T operator()(T const& a, T const& b) const { return a + b; }
};
template <int N>
struct AddRn<cutlass::Array<float, N>> {
  CUTLASS_DEVICE cutlass::Array<float, N> operator()(cutlass::Array<float, N> const& a,
                                                     cutlass::Array<float, N> const& b) const {
    cutlass::Array<float, N> r;
    CUTLASS_PRAGMA_UNROLL
    for (int i = 0; i < N; ++i) r[i] = __fadd_rn(a[i], b[i]);
    return r;
  }
};

// y = bf16(((acc * s_x[n]) * s_w[m]) + bias[m]) in CUTLASS coordinates (m channel, n token).
template <class TileShape>
struct DequantBiasEvt {
  using RN = cutlass::FloatRoundStyle;
  using Acc = cutlass::epilogue::fusion::Sm90AccFetch;
  using ScaleX = cutlass::epilogue::fusion::Sm90RowBroadcast<
      0, TileShape, float, float, cute::Stride<cute::_0, cute::_1, cute::_0>>;  // per token
  using ScaleW = cutlass::epilogue::fusion::Sm90ColBroadcast<
      0, TileShape, float, float, cute::Stride<cute::_1, cute::_0, cute::_0>>;  // per channel
  using Bias = ScaleW;
  using T0 = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<MulRn, float, float, RN::round_to_nearest>, Acc,
      ScaleX>;
  using T1 = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<MulRn, float, float, RN::round_to_nearest>, T0,
      ScaleW>;
  using Tree = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<AddRn, cutlass::bfloat16_t, float,
                                             RN::round_to_nearest>,
      T1, Bias>;
  static typename Tree::Arguments args(const CutlassEpilogue& e) {
    return typename Tree::Arguments{
        {{{}, {e.s_x, 1.0f, {}}, {}}, {e.s_w, 1.0f, {}}, {}}, {e.bias, 0.0f, {}}, {}};
  }
};

// D = bf16(r + bf16(((acc * s_x[n]) * s_w[m]) + bias[m])) with r = C (bf16): the residual add
// of the layer after its output is rounded, as kernels/epilogue.cu with a residual.
template <class TileShape>
struct DequantBiasResidualEvt {
  using RN = cutlass::FloatRoundStyle;
  using Base = DequantBiasEvt<TileShape>;
  using Tree = cutlass::epilogue::fusion::Sm90EVT<
      cutlass::epilogue::fusion::Sm90Compute<AddRn, cutlass::bfloat16_t, float,
                                             RN::round_to_nearest>,
      typename Base::Tree, cutlass::epilogue::fusion::Sm90SrcFetch<cutlass::bfloat16_t>>;
  static typename Tree::Arguments args(const CutlassEpilogue& e) {
    return typename Tree::Arguments{Base::args(e), {}, {}};
  }
};

// One kernel configuration. ElementAB: int8_t or cutlass::float_e4m3_t.
template <class ElementAB_, bool kSparse_, class TileShape_, class ClusterShape_,
          class KernelSchedule_, class EpilogueSchedule_>
struct Config {
  using ElementAB = ElementAB_;
  static constexpr bool kSparse = kSparse_;
  using TileShape = TileShape_;
  using ClusterShape = ClusterShape_;
  using KernelSchedule = KernelSchedule_;
  using EpilogueSchedule = EpilogueSchedule_;
  using ElementAcc = std::conditional_t<std::is_same_v<ElementAB, int8_t>, int32_t, float>;
};

// kResidual (with kFused): the epilogue also reads C = the residual (bf16, D's layout).
template <class Cfg, bool kFused, bool kResidual = false>
struct Kernel {
  static_assert(kFused || !kResidual);
  using ElementAB = typename Cfg::ElementAB;
  using ElementAcc = typename Cfg::ElementAcc;
  using ElementD = std::conditional_t<kFused, cutlass::bfloat16_t, ElementAcc>;
  using ElementC = std::conditional_t<kResidual, cutlass::bfloat16_t, void>;
  using ElementCompute = std::conditional_t<kFused, float, ElementAcc>;
  static constexpr int kAlignAB = 128 / cutlass::sizeof_bits<ElementAB>::value;
  static constexpr int kAlignD = 128 / cutlass::sizeof_bits<ElementD>::value;
  using Fusion = std::conditional_t<
      kResidual, typename DequantBiasResidualEvt<typename Cfg::TileShape>::Tree,
      std::conditional_t<kFused, typename DequantBiasEvt<typename Cfg::TileShape>::Tree,
                         cutlass::epilogue::fusion::LinearCombination<ElementD, ElementCompute,
                                                                      void, ElementCompute>>>;
  using CollectiveEpilogue = typename cutlass::epilogue::collective::CollectiveBuilder<
      cutlass::arch::Sm90, cutlass::arch::OpClassTensorOp, typename Cfg::TileShape,
      typename Cfg::ClusterShape, cutlass::epilogue::collective::EpilogueTileAuto, ElementAcc,
      ElementCompute, ElementC, cutlass::layout::ColumnMajor, kAlignD, ElementD,
      cutlass::layout::ColumnMajor, kAlignD, typename Cfg::EpilogueSchedule, Fusion>::CollectiveOp;
  using OpClass = std::conditional_t<Cfg::kSparse, cutlass::arch::OpClassSparseTensorOp,
                                     cutlass::arch::OpClassTensorOp>;
  using CollectiveMainloop = typename cutlass::gemm::collective::CollectiveBuilder<
      cutlass::arch::Sm90, OpClass, ElementAB, cutlass::layout::RowMajor, kAlignAB, ElementAB,
      cutlass::layout::ColumnMajor, kAlignAB, ElementAcc, typename Cfg::TileShape,
      typename Cfg::ClusterShape,
      cutlass::gemm::collective::StageCountAutoCarveout<static_cast<int>(
          sizeof(typename CollectiveEpilogue::SharedStorage))>,
      typename Cfg::KernelSchedule>::CollectiveOp;
  using GemmKernel =
      cutlass::gemm::kernel::GemmUniversal<cute::Shape<int, int, int, int>, CollectiveMainloop,
                                           CollectiveEpilogue, cutlass::gemm::PersistentScheduler>;
  using Gemm = cutlass::gemm::device::GemmUniversalAdapter<GemmKernel>;
  using StrideA = cutlass::gemm::TagToStrideA_t<cutlass::layout::RowMajor>;
  using StrideB = typename GemmKernel::StrideB;
  using StrideC = typename GemmKernel::StrideC;
  using StrideD = typename GemmKernel::StrideD;
};

// initialize() results, cached by everything that goes into the kernel's parameters.
template <class K>
class PlanCache {
 public:
  using Key = std::tuple<int64_t, int64_t, const void*, void*, const float*, const float*,
                         const float*, const void*>;
  // Returns the initialized GEMM for `args` (building it on a miss).
  Expected<typename K::Gemm*> get(const Key& key, const typename K::Gemm::Arguments& args,
                                  cudaStream_t stream) {
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second.get();
    if (plans_.size() >= 64) plans_.clear();  // pointers churn: keep the cache bounded
    auto g = std::make_unique<typename K::Gemm>();
    cutlass::Status s = g->can_implement(args);
    if (s != cutlass::Status::kSuccess)
      return unsupported(
          std::string("CUTLASS GEMM cannot implement M=") + std::to_string(std::get<0>(key)) +
          " ldd=" + std::to_string(std::get<1>(key)) + ": " + cutlassGetStatusString(s));
    size_t ws = K::Gemm::get_workspace_size(args);
    if (ws > workspace_.bytes()) {
      plans_.clear();  // their parameters point into the workspace that is about to move
      SS_RETURN_IF_ERROR(workspace_.reserve(ws));
    }
    SS_RETURN_IF_ERROR(cutlass_status(g->initialize(args, workspace_.get(), stream), "initialize"));
    auto* raw = g.get();
    plans_[key] = std::move(g);
    return raw;
  }

 private:
  std::map<Key, std::unique_ptr<typename K::Gemm>> plans_;
  DeviceBuffer workspace_;
};

inline int sm_count() {
  static int n = [] {
    int dev = 0, c = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&c, cudaDevAttrMultiProcessorCount, dev);
    return c;
  }();
  return n;
}

// The operands one configuration runs on: the compressed weight (sparse) or the dense weight.
struct WeightView {
  const void* w = nullptr;    // dense [N_gemm, K_pad]
  const void* a_c = nullptr;  // sparse: compressed values
  const void* e = nullptr;    // sparse: metadata
};

// One configuration: its three kernels (GEMM only, fused, fused + residual) and their initialized
// plans.
template <class Cfg>
class Runner {
  using KA = Kernel<Cfg, false>;
  using KF = Kernel<Cfg, true>;
  using KR = Kernel<Cfg, true, true>;
  using ElementAB = typename Cfg::ElementAB;

 public:
  static std::string name() {
    return std::string(
               std::is_same_v<typename Cfg::KernelSchedule,
                              cutlass::gemm::KernelTmaWarpSpecializedPingpong> ||
                       std::is_same_v<typename Cfg::KernelSchedule,
                                      cutlass::gemm::KernelTmaWarpSpecializedPingpongFP8FastAccum>
                   ? "pingpong "
                   : "cooperative ") +
           std::to_string(size<0>(typename Cfg::TileShape{})) + "x" +
           std::to_string(size<1>(typename Cfg::TileShape{})) + "x" +
           std::to_string(size<2>(typename Cfg::TileShape{})) + " cluster " +
           std::to_string(size<0>(typename Cfg::ClusterShape{})) + "x" +
           std::to_string(size<1>(typename Cfg::ClusterShape{}));
  }

  Status run(const WeightView& wv, int64_t N_gemm, int64_t K_pad, const void* x, void* d, int64_t M,
             int64_t ldd, cudaStream_t stream) {
    typename KA::Gemm::Arguments args = make_args<KA>(wv, N_gemm, K_pad, x, d, M, ldd);
    args.epilogue.thread.alpha = typename KA::ElementCompute(1);
    args.epilogue.thread.beta = typename KA::ElementCompute(0);
    SS_ASSIGN_OR_RETURN(
        auto* g, acc_plans_.get({M, ldd, x, d, nullptr, nullptr, nullptr, nullptr}, args, stream));
    SS_RETURN_IF_ERROR(cutlass_status(g->run(stream), "run"));
    SS_CUDA_TRY(cudaGetLastError());
    return Status::Ok();
  }

  Status run_fused(const WeightView& wv, int64_t N_gemm, int64_t K_pad, const void* x,
                   const CutlassEpilogue& e, void* y, int64_t M, int64_t ldy, cudaStream_t stream) {
    if (e.residual) {
      typename KR::Gemm::Arguments args = make_args<KR>(wv, N_gemm, K_pad, x, y, M, ldy);
      args.epilogue.thread = DequantBiasResidualEvt<typename Cfg::TileShape>::args(e);
      args.epilogue.ptr_C = static_cast<const cutlass::bfloat16_t*>(e.residual);
      args.epilogue.dC = args.epilogue.dD;
      SS_ASSIGN_OR_RETURN(
          auto* g, res_plans_.get({M, ldy, x, y, e.s_x, e.s_w, e.bias, e.residual}, args, stream));
      SS_RETURN_IF_ERROR(cutlass_status(g->run(stream), "run"));
      SS_CUDA_TRY(cudaGetLastError());
      return Status::Ok();
    }
    typename KF::Gemm::Arguments args = make_args<KF>(wv, N_gemm, K_pad, x, y, M, ldy);
    args.epilogue.thread = DequantBiasEvt<typename Cfg::TileShape>::args(e);
    SS_ASSIGN_OR_RETURN(
        auto* g, fused_plans_.get({M, ldy, x, y, e.s_x, e.s_w, e.bias, nullptr}, args, stream));
    SS_RETURN_IF_ERROR(cutlass_status(g->run(stream), "run"));
    SS_CUDA_TRY(cudaGetLastError());
    return Status::Ok();
  }

 private:
  template <class K>
  static typename K::Gemm::Arguments make_args(const WeightView& wv, int64_t N_gemm, int64_t K_pad,
                                               const void* x, void* d, int64_t M, int64_t ldd) {
    using ED = typename K::ElementD;
    const int m = static_cast<int>(N_gemm), n = static_cast<int>(M), k = static_cast<int>(K_pad);
    auto problem = cute::Shape<int, int, int, int>{m, n, k, 1};
    // B = X [tokens, K] (K-major); D column-major [channels, tokens] with ld ldd.
    typename K::StrideB sb = cute::make_stride(int64_t(k), cute::_1{}, int64_t(0));
    typename K::StrideD sd = cute::make_stride(cute::_1{}, int64_t(ldd), int64_t(0));
    typename K::StrideC sc{};
    typename K::Gemm::Arguments args{};
    args.mode = cutlass::gemm::GemmUniversalMode::kGemm;
    args.problem_shape = problem;
    if constexpr (Cfg::kSparse) {
      using SparseConfig = typename K::CollectiveMainloop::SparseConfig;
      args.mainloop = {static_cast<const ElementAB*>(wv.a_c),
                       SparseConfig::fill_layoutA(problem),
                       static_cast<const ElementAB*>(x),
                       sb,
                       static_cast<const typename K::CollectiveMainloop::ElementE*>(wv.e),
                       SparseConfig::fill_layoutE(problem)};
    } else {
      typename K::StrideA sa = cute::make_stride(int64_t(k), cute::_1{}, int64_t(0));
      args.mainloop = {static_cast<const ElementAB*>(wv.w), sa, static_cast<const ElementAB*>(x),
                       sb};
    }
    args.epilogue.ptr_C = nullptr;
    args.epilogue.dC = sc;
    args.epilogue.ptr_D = static_cast<ED*>(d);
    args.epilogue.dD = sd;
    args.hw_info.device_id = 0;
    args.hw_info.sm_count = sm_count();
    return args;
  }

  PlanCache<KA> acc_plans_;
  PlanCache<KF> fused_plans_;
  PlanCache<KR> res_plans_;
};

// The configurations of one dtype and kind over one weight (configuration 0 is the default).
// Sparse: all share one compressed layout (SparseConfig: tile K >= 128, static_assert below).
template <class Cfg0, class... CfgN>
class CutlassGemmImpl final : public GemmCutlass {
  using Cfg = Cfg0;
  using KA = Kernel<Cfg0, false>;
  using ElementAB = typename Cfg::ElementAB;
  using Mainloop = typename KA::CollectiveMainloop;
  static_assert(((std::is_same_v<ElementAB, typename CfgN::ElementAB> &&
                  Cfg0::kSparse == CfgN::kSparse) &&
                 ...));
  static constexpr int kN = 1 + static_cast<int>(sizeof...(CfgN));
  static_assert(kN <= kMaxConfigs);
  using Runners = std::tuple<Runner<Cfg0>, Runner<CfgN>...>;

 public:
  // Sparse: compresses rows [0, N_gemm) of w (ld ld_w). Dense: keeps the pointer.
  static Expected<std::unique_ptr<GemmCutlass>> create(DType in, int64_t N, int64_t K_pad,
                                                       int64_t ld_w, const void* w,
                                                       cudaStream_t stream) {
    std::unique_ptr<CutlassGemmImpl> g(new CutlassGemmImpl());
    g->in_ = in;
    g->N_ = N;
    g->K_pad_ = K_pad;
    g->sparse_ = Cfg::kSparse;
    if constexpr (Cfg::kSparse) {
      SS_RETURN_IF_ERROR(g->compress(ld_w, w, stream));
      g->wv_.a_c = g->a_c_.get();
      g->wv_.e = g->e_.get();
    } else {
      g->wv_.w = w;
    }
    return std::unique_ptr<GemmCutlass>(std::move(g));
  }

  int configs() const override { return kN; }
  std::string describe() const override {
    std::string s = std::string("CUTLASS sm90 ") + (Cfg::kSparse ? "2:4 sparse " : "dense ") +
                    dtype_name(in_) + " {";
    for (int c = 0; c < kN; ++c) s += (c ? " | " : "") + config_name(c);
    return s + "}";
  }
  std::string config_name(int c) const override {
    const std::string names[kN] = {Runner<Cfg0>::name(), Runner<CfgN>::name()...};
    return c >= 0 && c < kN ? names[c] : std::string("?");
  }
  size_t weight_bytes() const override {
    return Cfg::kSparse ? a_c_.bytes() + e_.bytes()
                        : static_cast<size_t>(N_gemm() * K_pad_) * sizeof(ElementAB);
  }

  Status run(const void* x, void* d, int64_t M, int64_t ldd, int config,
             cudaStream_t stream) override {
    SS_RETURN_IF_ERROR(can_implement(M, ldd, false));
    SS_RETURN_IF_ERROR(check_config(config));
    return with_runner(config,
                       [&](auto& r) { return r.run(wv_, N_gemm(), K_pad_, x, d, M, ldd, stream); });
  }

  Status run_fused(const void* x, const CutlassEpilogue& e, void* y, int64_t M, int64_t ldy,
                   int config, cudaStream_t stream) override {
    SS_RETURN_IF_ERROR(can_implement(M, ldy, true));
    SS_RETURN_IF_ERROR(check_config(config));
    if (!e.s_x || !e.s_w) return invalid_argument("CUTLASS fused GEMM: s_x and s_w are required");
    return with_runner(config, [&](auto& r) {
      return r.run_fused(wv_, N_gemm(), K_pad_, x, e, y, M, ldy, stream);
    });
  }

 private:
  CutlassGemmImpl() = default;
  static Status check_config(int c) {
    if (c >= 0 && c < kN) return Status::Ok();
    return invalid_argument("CUTLASS GEMM: config " + std::to_string(c) + " must be in [0, " +
                            std::to_string(kN) + ")");
  }
  // f(runner of configuration c) for c in [0, kN) (checked by the callers).
  template <class F, size_t... I>
  Status with_runner_i(int c, F&& f, std::index_sequence<I...>) {
    Status s = Status::Ok();
    ((static_cast<int>(I) == c ? void(s = f(std::get<I>(runners_))) : void()), ...);
    return s;
  }
  template <class F>
  Status with_runner(int c, F&& f) {
    return with_runner_i(c, std::forward<F>(f), std::make_index_sequence<kN>{});
  }

  Status compress(int64_t ld_w, const void* w, cudaStream_t stream) {
    if constexpr (Cfg::kSparse) {
      // Every configuration reads the one compressed copy.
      static_assert(
          (std::is_same_v<typename Mainloop::SparseConfig,
                          typename Kernel<CfgN, false>::CollectiveMainloop::SparseConfig> &&
           ...));
      using ProblemShape = cute::Shape<int, int, int, int>;
      using SparseConfig = typename Mainloop::SparseConfig;
      using StrideA = typename KA::StrideA;
      using Utility = cutlass::transform::kernel::StructuredSparseCompressorUtility<
          ProblemShape, ElementAB, cutlass::layout::RowMajor, SparseConfig>;
      using CompressorKernel = cutlass::transform::kernel::StructuredSparseCompressor<
          ProblemShape, ElementAB, cutlass::layout::RowMajor, SparseConfig, cutlass::arch::Sm90>;
      using Compressor = cutlass::transform::device::TransformUniversalAdapter<CompressorKernel>;
      ProblemShape problem{static_cast<int>(N_gemm()), 1, static_cast<int>(K_pad_), 1};
      StrideA sa{ld_w, cute::_1{}, int64_t(0)};
      Utility util(problem, sa);
      const size_t a_bytes = static_cast<size_t>(util.get_tensorA_m_physical()) *
                             util.get_tensorA_k_physical() * sizeof(ElementAB);
      const size_t e_bytes = static_cast<size_t>(util.get_metadata_m_physical()) *
                             util.get_metadata_k_physical() * sizeof(typename Mainloop::ElementE);
      SS_RETURN_IF_ERROR(a_c_.reserve(a_bytes));
      SS_RETURN_IF_ERROR(e_.reserve(e_bytes));
      SS_CUDA_TRY(cudaMemsetAsync(a_c_.get(), 0, a_bytes, stream));
      SS_CUDA_TRY(cudaMemsetAsync(e_.get(), 0, e_bytes, stream));
      cutlass::KernelHardwareInfo hw;
      hw.device_id = 0;
      hw.sm_count = sm_count();
      typename Compressor::Arguments args{
          problem,
          {static_cast<const ElementAB*>(w), sa, static_cast<ElementAB*>(a_c_.get()),
           static_cast<typename Mainloop::ElementE*>(e_.get())},
          {hw}};
      Compressor op;
      SS_RETURN_IF_ERROR(cutlass_status(op.can_implement(args), "compressor can_implement"));
      DeviceBuffer ws;
      size_t wsb = Compressor::get_workspace_size(args);
      SS_RETURN_IF_ERROR(ws.reserve(wsb > 0 ? wsb : 256));
      SS_RETURN_IF_ERROR(
          cutlass_status(op.initialize(args, ws.get(), stream), "compressor initialize"));
      SS_RETURN_IF_ERROR(cutlass_status(op.run(stream), "compressor run"));
      SS_CUDA_TRY(cudaGetLastError());
      SS_CUDA_TRY(cudaStreamSynchronize(stream));  // ws is freed next: load time only
    }
    return Status::Ok();
  }

  DeviceBuffer a_c_, e_;  // sparse: compressed values, metadata
  WeightView wv_;         // dense: the caller's weight (not owned)
  Runners runners_;       // one per configuration, each with its plan caches
};

// A configuration by its numbers, as the per-dtype .cu files list them: tile TM x TN x TK,
// cluster CM x 1, pingpong or cooperative (kernel and epilogue schedule; fp8 takes the FastAccum
// kernel schedules). The same Config types as spelled out in full.
enum class Sched { kPingpong, kCooperative };
template <class ElementAB, Sched S>
struct KernelSched {
  static constexpr bool kF8 = !std::is_same_v<ElementAB, int8_t>;
  using Pingpong =
      std::conditional_t<kF8, cutlass::gemm::KernelTmaWarpSpecializedPingpongFP8FastAccum,
                         cutlass::gemm::KernelTmaWarpSpecializedPingpong>;
  using Cooperative =
      std::conditional_t<kF8, cutlass::gemm::KernelTmaWarpSpecializedCooperativeFP8FastAccum,
                         cutlass::gemm::KernelTmaWarpSpecializedCooperative>;
  using Kernel = std::conditional_t<S == Sched::kPingpong, Pingpong, Cooperative>;
  using Epilogue = std::conditional_t<S == Sched::kPingpong, cutlass::epilogue::TmaWarpSpecialized,
                                      cutlass::epilogue::TmaWarpSpecializedCooperative>;
};
template <class ElementAB, bool kSparse, int TM, int TN, int TK, int CM, Sched S>
using Cfg = Config<ElementAB, kSparse, cute::Shape<cute::Int<TM>, cute::Int<TN>, cute::Int<TK>>,
                   cute::Shape<cute::Int<CM>, cute::_1, cute::_1>,
                   typename KernelSched<ElementAB, S>::Kernel,
                   typename KernelSched<ElementAB, S>::Epilogue>;

}  // namespace slidesparse::cuda::cutlass_impl
