// Fused residual add + RMSNorm + quantize / lift: one CTA per slot row (row_ops.cuh), or, for the
// W8A8 norm without the add, one warp per row (below).
#include <string>

#include "cuda/kernels/add_rmsnorm_prologue.cuh"
#include "cuda/kernels/row_ops.cuh"

namespace slidesparse::cuda::kernels {
namespace {

constexpr int kWarpRowsPerCta = 4;
constexpr int kWarpMaxChunks = 24;  // 8-element chunks per lane: C <= 24 * 8 * 32 = 6144

// One warp per row of the W8A8 norm without the residual add: lane l holds chunks l, l + 32, ...
// (8 elements each, KMAX per lane at most) in registers, so a row needs no shared memory and no
// block barrier (two warp shuffle reductions), and many rows per SM have their loads in flight.
// The element code is row_kernel's (sumsq8, norm8; the fp64 sum in another order: the mean is the
// same correctly rounded value, see row_ops.cuh), then quant_row_store's scale rule (row_scale)
// and codes (quant8) -- stored plainly (columns >= C zero) or as 6:8 windows (store_windows68,
// then zeros up to K_out).
template <class T, bool FP8, bool LIFT68, int KMAX>
__global__ void __launch_bounds__(32 * kWarpRowsPerCta) norm_warp_kernel(RowArgs a, int64_t rows) {
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarpRowsPerCta + (threadIdx.x >> 5);
  if (r >= rows) return;
  uint8_t* o = static_cast<uint8_t*>(a.out) + r * a.K_out;
  if (r >= a.M) {  // padding rows of the slot are zero
    for (int c = lane * 16; c < a.K_out; c += 32 * 16)
      *reinterpret_cast<uint4*>(o + c) = make_uint4(0, 0, 0, 0);
    return;
  }
  const int C = a.C;
  const T* x = static_cast<const T*>(a.x) + r * C;
  const T* w = static_cast<const T*>(a.w);
  Pack8<T> v[KMAX];
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int c = (k * 32 + lane) * 8;
    if (c < C) v[k].u = __ldg(reinterpret_cast<const uint4*>(x + c));
  }
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < KMAX; ++k)
    if ((k * 32 + lane) * 8 < C) ss = sumsq8(v[k].e, ss);
  for (int m = 16; m > 0; m >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, m);
  const float mean = __double2float_rn(__ddiv_rn(ss, static_cast<double>(C)));
  const float inv = exact::rms_inv(mean, a.eps);
  float amax = 0.0f;
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int c = (k * 32 + lane) * 8;
    if (c >= C) continue;
    Pack8<T> pw;
    pw.u = __ldg(reinterpret_cast<const uint4*>(w + c));
    norm8(v[k].e, pw.e, inv, amax);
  }
  for (int m = 16; m > 0; m >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, m));
  float inv_s;
  const float scale = row_scale(amax, a.qmax, &inv_s);
  if (lane == 0) a.scales[r] = scale;
#pragma unroll
  for (int k = 0; k < KMAX; ++k) {
    const int c = (k * 32 + lane) * 8;
    if (c >= C) continue;
    const uint2 q = quant8<T, FP8>(v[k].e, scale, inv_s);
    if constexpr (LIFT68)
      store_windows68(o + c / 8 * 12, q);
    else
      *reinterpret_cast<uint2*>(o + c) = q;
  }
  if constexpr (LIFT68) {
    for (int c = C / 8 * 12 + lane * 4; c < a.K_out; c += 32 * 4)
      *reinterpret_cast<uint32_t*>(o + c) = 0u;
  } else {
    for (int c = C + lane * 8; c < a.K_out; c += 32 * 8)
      *reinterpret_cast<uint2*>(o + c) = make_uint2(0, 0);
  }
}

template <class T, bool FP8, bool LIFT68>
Status launch_warp_t(const RowArgs& a, int64_t rows, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>((rows + kWarpRowsPerCta - 1) / kWarpRowsPerCta);
  const int chunks = (a.C / 8 + 31) / 32;  // per lane
  if (chunks <= 8)
    norm_warp_kernel<T, FP8, LIFT68, 8><<<grid, 32 * kWarpRowsPerCta, 0, stream>>>(a, rows);
  else if (chunks <= 16)
    norm_warp_kernel<T, FP8, LIFT68, 16><<<grid, 32 * kWarpRowsPerCta, 0, stream>>>(a, rows);
  else
    norm_warp_kernel<T, FP8, LIFT68, kWarpMaxChunks>
        <<<grid, 32 * kWarpRowsPerCta, 0, stream>>>(a, rows);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

template <class T>
Status launch_warp(const RowArgs& a, bool fp8, bool lift68, int64_t rows, cudaStream_t stream) {
  if (lift68)
    return fp8 ? launch_warp_t<T, true, true>(a, rows, stream)
               : launch_warp_t<T, false, true>(a, rows, stream);
  return fp8 ? launch_warp_t<T, true, false>(a, rows, stream)
             : launch_warp_t<T, false, false>(a, rows, stream);
}

}  // namespace

bool add_rmsnorm_prologue_warp_supports(int64_t C, const InputSlot& slot, bool with_add) {
  if (with_add || C <= 0 || C % 8 != 0 || C > kWarpMaxChunks * 8 * 32) return false;
  if (!slot.codes || slot.quant == QuantMode::kNone) return false;
  if (!slot.lifted) return true;
  const Pattern& p = slot.lift;
  return (p.n == 2 && p.m == 4) || (p.m == 8 && p.lifted_block() == 12);  // plain or 6:8
}

Status launch_add_rmsnorm_prologue(DType t, void* x, const void* d, const void* w, float eps,
                                   int64_t M, int64_t C, const InputSlot& slot, cudaStream_t stream,
                                   NormKernel kernel) {
  const std::string op = "add_rmsnorm_prologue";
  SS_RETURN_IF_ERROR(check_16bit(op, t));
  if (M < 0 || C <= 0 || M > 0x7fffffff || C > 0x3fffffff)
    return invalid_argument(op + ": bad sizes M=" + std::to_string(M) + " C=" + std::to_string(C));
  if ((M > 0 && !x) || !w) return invalid_argument(op + ": x and w must not be null");
  RowArgs a;
  int mode = 0;
  SS_RETURN_IF_ERROR(row_slot_setup(op, t, M, C, slot, &a, &mode));
  a.x = x;
  a.d = d;
  a.w = w;
  a.eps = eps;
  a.M = M;
  a.C = static_cast<int>(C);
  a.vec = C % 8 == 0 && aligned16(x) && (!d || aligned16(d)) && aligned16(w);
  const bool fp8 = slot.quant == QuantMode::kFp8;
  const bool warp_ok = add_rmsnorm_prologue_warp_supports(C, slot, d != nullptr) && a.vec;
  if (kernel == NormKernel::kWarp && !warp_ok)
    return unsupported(
        op + ": the warp-per-row kernel runs the W8A8 norm without the residual " +
        "add, plain or 6:8 codes, C % 8 == 0 and C <= 6144, aligned (C=" + std::to_string(C) + ")");
  if (kernel != NormKernel::kCta && warp_ok) {
    if (slot.M_pad == 0) return Status::Ok();
    const bool lift68 = mode == kRowQuantLift;
    return t == DType::kBF16 ? launch_warp<__nv_bfloat16>(a, fp8, lift68, slot.M_pad, stream)
                             : launch_warp<__half>(a, fp8, lift68, slot.M_pad, stream);
  }
  return launch_row_slot<kOpAddRmsNorm>(t, a, mode, fp8, slot.M_pad, stream);
}

Status norm_kernel_parse(const char* name, NormKernel* out) {
  for (NormKernel k : {NormKernel::kCta, NormKernel::kWarp, NormKernel::kAuto})
    if (std::string(name) == norm_kernel_name(k)) {
      *out = k;
      return Status::Ok();
    }
  return invalid_argument(std::string("norm kernel '") + name + "' (expected cta, warp or auto)");
}

const char* norm_kernel_name(NormKernel k) {
  switch (k) {
    case NormKernel::kWarp:
      return "warp";
    case NormKernel::kAuto:
      return "auto";
    default:
      return "cta";
  }
}

}  // namespace slidesparse::cuda::kernels
