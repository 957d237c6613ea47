// Fused residual add + RMSNorm + quantize / lift: one CTA per slot row (row_ops.cuh's row_kernel,
// or the register-resident kernel below for W8A8 slots of rows up to 16384 columns).
#include "cuda/kernels/add_rmsnorm_prologue.cuh"
#include "cuda/kernels/row_ops.cuh"

namespace slidesparse::cuda::kernels {
namespace {

// Register-resident variant for W8A8 slots (quantize, quantize + lift) with 16-byte access: every
// load of the row (x, d, w) is issued at once and the row stays in registers (row_kernel reads
// it in a loop of dependent iterations and keeps it in shared memory; at C = 3584 its CTAs wait
// on two DRAM round trips one after the other). Same threads per CTA and the same element order
// per thread as row_kernel (row_threads), so the fp64 sum of squares, and so everything after
// it, is bit-identical; quant_reg_store ends it as quant_row_store would. C <= 512 x 4 x 8.
constexpr int kRmsRegChunks = 4;

template <class T, bool LIFT, bool FP8>
__global__ void __launch_bounds__(512) rms_quant_reg_kernel(RowArgs a) {
  extern __shared__ __align__(16) unsigned char codes[];  // LIFT: the row's codes (nblk * m)
  __shared__ float red[32];
  __shared__ double dred[32];
  const int64_t r = blockIdx.x;
  const int C = a.C, tid = threadIdx.x, nt = blockDim.x;
  if (r >= a.M) return zero_slot_row(a, r);  // padding rows of the slot are zero
  T* x = static_cast<T*>(a.x) + r * C;
  const T* w = static_cast<const T*>(a.w);
  Pack8<T> px[kRmsRegChunks], pw[kRmsRegChunks];
#pragma unroll
  for (int k = 0; k < kRmsRegChunks; ++k) {
    const int c = (tid + k * nt) * 8;
    if (c < C) px[k].u = *reinterpret_cast<const uint4*>(x + c);
  }
  if (a.d) {  // residual add, rounded to T, written back
    const T* d = static_cast<const T*>(a.d) + r * C;
    Pack8<T> pd[kRmsRegChunks];
#pragma unroll
    for (int k = 0; k < kRmsRegChunks; ++k) {
      const int c = (tid + k * nt) * 8;
      if (c < C) pd[k].u = __ldg(reinterpret_cast<const uint4*>(d + c));
    }
#pragma unroll
    for (int k = 0; k < kRmsRegChunks; ++k) {
      const int c = (tid + k * nt) * 8;
      if (c < C) {
#pragma unroll
        for (int i = 0; i < 8; ++i)
          px[k].e[i] = from_f32<T>(__fadd_rn(to_f32(px[k].e[i]), to_f32(pd[k].e[i])));
        *reinterpret_cast<uint4*>(x + c) = px[k].u;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kRmsRegChunks; ++k) {
    const int c = (tid + k * nt) * 8;
    if (c < C) pw[k].u = __ldg(reinterpret_cast<const uint4*>(w + c));
  }
  double ss = 0.0;  // row_kernel's order: chunk by chunk, element by element
#pragma unroll
  for (int k = 0; k < kRmsRegChunks; ++k)
    if ((tid + k * nt) * 8 < C) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const double v = to_f32(px[k].e[i]);
        ss = fma(v, v, ss);
      }
    }
  ss = block_sum(ss, dred);
  const float mean = __double2float_rn(__ddiv_rn(ss, static_cast<double>(C)));
  const float inv = exact::rms_inv(mean, a.eps);
  float amax = 0.0f;
#pragma unroll
  for (int k = 0; k < kRmsRegChunks; ++k)
    if ((tid + k * nt) * 8 < C) {
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        const float n = round_to<T>(__fmul_rn(to_f32(px[k].e[i]), inv));
        px[k].e[i] = from_f32<T>(__fmul_rn(to_f32(pw[k].e[i]), n));
        amax = fmaxf(amax, fabsf(to_f32(px[k].e[i])));
      }
    }
  quant_reg_store<T, kRmsRegChunks, LIFT, FP8>(px, amax, a, r, red, codes);
}

template <class T, bool LIFT, bool FP8>
Status launch_reg_t(const RowArgs& a, int64_t grid, cudaStream_t stream) {
  // C <= 16384: at most 16.4 KiB of codes, no opt-in above 48 KiB needed.
  const size_t smem = LIFT ? (static_cast<size_t>(a.C) + 47) & ~size_t{15} : 0;
  rms_quant_reg_kernel<T, LIFT, FP8>
      <<<static_cast<unsigned>(grid), row_threads(a.C), smem, stream>>>(a);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

template <class T>
Status launch_reg(const RowArgs& a, int mode, bool fp8, int64_t grid, cudaStream_t stream) {
  if (mode == kRowQuantLift)
    return fp8 ? launch_reg_t<T, true, true>(a, grid, stream)
               : launch_reg_t<T, true, false>(a, grid, stream);
  return fp8 ? launch_reg_t<T, false, true>(a, grid, stream)
             : launch_reg_t<T, false, false>(a, grid, stream);
}

}  // namespace

Status launch_add_rmsnorm_prologue(DType t, void* x, const void* d, const void* w, float eps,
                                   int64_t M, int64_t C, const InputSlot& slot,
                                   cudaStream_t stream) {
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
  // Register-resident rows for W8A8 slots: row_threads(C) threads x kRmsRegChunks chunks of 8.
  if (a.vec && mode != kRowLift && C <= static_cast<int64_t>(row_threads(C)) * kRmsRegChunks * 8) {
    if (slot.M_pad == 0) return Status::Ok();
    return t == DType::kBF16 ? launch_reg<__nv_bfloat16>(a, mode, fp8, slot.M_pad, stream)
                             : launch_reg<__half>(a, mode, fp8, slot.M_pad, stream);
  }
  return launch_row_slot<kOpAddRmsNorm>(t, a, mode, slot.quant == QuantMode::kFp8, slot.M_pad,
                                        stream);
}

}  // namespace slidesparse::cuda::kernels
