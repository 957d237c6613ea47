// Fused SwiGLU + quantize / lift: one CTA per slot row (row_ops.cuh's row_kernel, or the
// register-resident kernel below for W8A8 slots of rows up to 20480 columns).
#include "cuda/kernels/row_ops.cuh"
#include "cuda/kernels/silu_mul_prologue.cuh"

namespace slidesparse::cuda::kernels {
namespace {

// Register-resident variant for W8A8 slots (quantize, quantize + lift) when a thread's share of
// the row is at most kRegChunks chunks of 8: every load of the row is issued at once (~75 KiB in
// flight per CTA for Qwen2.5-7B's F), the SwiGLU row stays in registers (no shared-memory row),
// and the codes go straight to global memory (quantize) or through a shared codes row (lift).
// Same element code, absmax, scale and code rules as row_kernel's quant_row_store: bit-identical.
constexpr int kRegChunks = 5;

template <class T, bool LIFT, bool FP8, bool EXACT>
__global__ void __launch_bounds__(512, 2) silu_quant_reg_kernel(RowArgs a) {
  extern __shared__ __align__(16) unsigned char codes[];  // LIFT: the row's codes (nblk * m)
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const int C = a.C, tid = threadIdx.x, nt = blockDim.x;
  uint8_t* o = static_cast<uint8_t*>(a.out) + r * a.K_out;
  if (r >= a.M) {  // padding rows of the slot are zero
    for (int c = tid * 16; c < a.K_out; c += nt * 16)
      *reinterpret_cast<uint4*>(o + c) = make_uint4(0, 0, 0, 0);
    return;
  }
  const T* g = static_cast<const T*>(a.gu) + r * a.ld;
  const T* u = g + C;
  Pack8<T> pg[kRegChunks], pu[kRegChunks];
#pragma unroll
  for (int k = 0; k < kRegChunks; ++k) {
    const int c = (tid + k * nt) * 8;
    if (c < C) {
      pg[k].u = __ldg(reinterpret_cast<const uint4*>(g + c));
      pu[k].u = __ldg(reinterpret_cast<const uint4*>(u + c));
    }
  }
  float amax = 0.0f;
#pragma unroll
  for (int k = 0; k < kRegChunks; ++k) {
    if ((tid + k * nt) * 8 < C) {
      Pack8<T> h;
      silu_mul8<T, EXACT>(pg[k].e, pu[k].e, h.e, &amax);
      pg[k] = h;
    }
  }
  amax = block_max(amax, red);
  float inv;
  const float scale = row_scale(amax, a.qmax, &inv);
  if (tid == 0) a.scales[r] = scale;
  if (LIFT && is_lift68(a.m, a.L)) {  // chunk k is 6:8 block c / 8: 12 bytes straight out
#pragma unroll
    for (int k = 0; k < kRegChunks; ++k) {
      const int c = (tid + k * nt) * 8;
      if (c < C) store_windows68(o + c / 8 * 12, quant8<T, FP8>(pg[k].e, scale, inv));
    }
    zero_tail4(o, C / 8 * 12, a.K_out);  // C % 8 == 0: nblk = C / 8
    return;
  }
  uint8_t* dst = LIFT ? codes : o;
#pragma unroll
  for (int k = 0; k < kRegChunks; ++k) {
    const int c = (tid + k * nt) * 8;
    if (c < C) *reinterpret_cast<uint2*>(dst + c) = quant8<T, FP8>(pg[k].e, scale, inv);
  }
  if constexpr (!LIFT) {
    for (int c = C + tid * 8; c < a.K_out; c += nt * 8)  // C % 8 == 0, K_out % 16 == 0
      *reinterpret_cast<uint2*>(o + c) = make_uint2(0, 0);
  } else {
    for (int c = C + tid; c < a.nblk * a.m; c += nt) codes[c] = 0;
    __syncthreads();
    lift_gather_store(codes, a.m, a.L, a.nblk, o, a.K_out);
  }
}

template <class T, bool LIFT, bool FP8, bool EXACT>
Status launch_reg_t(const RowArgs& a, int64_t grid, cudaStream_t stream) {
  const int64_t chunks = a.C / 8;
  const int threads = static_cast<int>(
      std::max<int64_t>(64, ((chunks + kRegChunks - 1) / kRegChunks + 31) / 32 * 32));
  // C <= 20480 (the caller's bound): at most 20.1 KiB, no opt-in above 48 KiB needed.
  const size_t smem = LIFT ? (static_cast<size_t>(a.C) + 47) & ~size_t{15} : 0;
  auto kernel = silu_quant_reg_kernel<T, LIFT, FP8, EXACT>;
  kernel<<<static_cast<unsigned>(grid), threads, smem, stream>>>(a);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

template <class T, bool EXACT>
Status launch_reg_m(const RowArgs& a, int mode, bool fp8, int64_t grid, cudaStream_t stream) {
  if (mode == kRowQuantLift)
    return fp8 ? launch_reg_t<T, true, true, EXACT>(a, grid, stream)
               : launch_reg_t<T, true, false, EXACT>(a, grid, stream);
  return fp8 ? launch_reg_t<T, false, true, EXACT>(a, grid, stream)
             : launch_reg_t<T, false, false, EXACT>(a, grid, stream);
}
template <class T>
Status launch_reg(const RowArgs& a, int mode, bool fp8, int64_t grid, cudaStream_t stream,
                  SiluMath math) {
  return math == SiluMath::kExact ? launch_reg_m<T, true>(a, mode, fp8, grid, stream)
                                  : launch_reg_m<T, false>(a, mode, fp8, grid, stream);
}

}  // namespace

Status launch_silu_mul_prologue(DType t, const void* gu, int64_t ld, int64_t M, int64_t F,
                                const InputSlot& slot, cudaStream_t stream, SiluMath math) {
  const std::string op = "silu_mul_prologue";
  SS_RETURN_IF_ERROR(check_16bit(op, t));
  if (M < 0 || F <= 0 || ld < 2 * F || M > 0x7fffffff || F > 0x3fffffff)
    return invalid_argument(op + ": bad sizes M=" + std::to_string(M) + " F=" + std::to_string(F) +
                            " ld=" + std::to_string(ld) + " (need ld >= 2F)");
  if (M > 0 && !gu) return invalid_argument(op + ": gu must not be null");
  RowArgs a;
  int mode = 0;
  SS_RETURN_IF_ERROR(row_slot_setup(op, t, M, F, slot, &a, &mode));
  a.gu = gu;
  a.ld = ld;
  a.M = M;
  a.C = static_cast<int>(F);
  a.vec = F % 8 == 0 && ld % 8 == 0 && aligned16(gu);
  const bool fp8 = slot.quant == QuantMode::kFp8;
  // Register-resident rows for W8A8 slots up to 512 threads x kRegChunks x 8 = 20480 columns.
  if (a.vec && mode != kRowLift && F <= 512 * kRegChunks * 8) {
    if (slot.M_pad == 0) return Status::Ok();
    return t == DType::kBF16 ? launch_reg<__nv_bfloat16>(a, mode, fp8, slot.M_pad, stream, math)
                             : launch_reg<__half>(a, mode, fp8, slot.M_pad, stream, math);
  }
  return math == SiluMath::kExact
             ? launch_row_slot<kOpSiluMulExact>(t, a, mode, fp8, slot.M_pad, stream)
             : launch_row_slot<kOpSiluMul>(t, a, mode, fp8, slot.M_pad, stream);
}

}  // namespace slidesparse::cuda::kernels
