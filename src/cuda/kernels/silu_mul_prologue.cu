// Fused SwiGLU + quantize / lift: one CTA per slot row (row_ops.cuh's row_kernel, or the
// pipelined kernel below for W8A8 slots of rows up to 20480 columns).
#include "cuda/kernels/row_ops.cuh"
#include "cuda/kernels/silu_mul_prologue.cuh"

namespace slidesparse::cuda::kernels {
namespace {

// Pipelined variant for W8A8 slots (quantize, quantize + lift) when a thread's share of a row is
// at most kRegChunks chunks of 8: persistent CTAs (2 per SM) walk rows r, r + grid, ...; each
// thread holds its chunks' gate/up loads in registers, and as soon as a chunk's SwiGLU is computed
// (into the shared row) the same registers load that chunk of the CTA's next row, so the next
// row's ~75 KiB (Qwen2.5-7B's F) are in flight during this row's compute, absmax, quantize and
// stores. Same element code, absmax, scale and code rules as row_kernel's quant_row_store:
// bit-identical.
constexpr int kRegChunks = 5;

template <class T, bool LIFT, bool FP8>
__global__ void __launch_bounds__(512, 2) silu_quant_pipe_kernel(RowArgs a, int rows) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __shared__ float red[2][32];  // by row parity: no barrier between one row's read and the next's
  T* hrow = reinterpret_cast<T*>(smem_raw);  // each thread's own chunks only: no barrier needed
  uint8_t* codes = smem_raw + ((static_cast<size_t>(a.C) * sizeof(T) + 15) & ~size_t{15});
  const int C = a.C, tid = threadIdx.x, nt = blockDim.x;
  Pack8<T> pg[kRegChunks], pu[kRegChunks];
  auto load = [&](int r, int k) {
    const int c = (tid + k * nt) * 8;
    if (r < a.M && c < C) {
      const T* g = static_cast<const T*>(a.gu) + static_cast<int64_t>(r) * a.ld;
      pg[k].u = __ldg(reinterpret_cast<const uint4*>(g + c));
      pu[k].u = __ldg(reinterpret_cast<const uint4*>(g + C + c));
    }
  };
  int r = blockIdx.x;  // rows <= 2^31 - 1 (launch_silu_mul_prologue checks M_pad)
#pragma unroll
  for (int k = 0; k < kRegChunks; ++k) load(r, k);
  for (int parity = 0; r < rows; r += gridDim.x, parity ^= 1) {
    uint8_t* o = static_cast<uint8_t*>(a.out) + static_cast<int64_t>(r) * a.K_out;
    const int next = r + static_cast<int>(gridDim.x);
    if (r >= a.M) {  // padding rows of the slot are zero (all later rows of this CTA too)
      for (int c = tid * 16; c < a.K_out; c += nt * 16)
        *reinterpret_cast<uint4*>(o + c) = make_uint4(0, 0, 0, 0);
      continue;
    }
    float amax = 0.0f;
#pragma unroll
    for (int k = 0; k < kRegChunks; ++k) {
      const int c = (tid + k * nt) * 8;
      if (c < C) {
        Pack8<T> h;
        silu_mul8<T>(pg[k].e, pu[k].e, h.e);
#pragma unroll
        for (int i = 0; i < 8; ++i) amax = fmaxf(amax, fabsf(to_f32(h.e[i])));
        *reinterpret_cast<uint4*>(hrow + c) = h.u;
        load(next, k);
      }
    }
    amax = block_max(amax, red[parity]);
    const float scale = amax > 0.0f ? __fdiv_rn(amax, a.qmax) : 1.0f;
    const float inv = __frcp_rn(scale);
    if (tid == 0) a.scales[r] = scale;
    uint8_t* dst = LIFT ? codes : o;
#pragma unroll
    for (int k = 0; k < kRegChunks; ++k) {
      const int c = (tid + k * nt) * 8;
      if (c < C) {
        Pack8<T> h;
        h.u = *reinterpret_cast<const uint4*>(hrow + c);
        *reinterpret_cast<uint2*>(dst + c) = quant8<T, FP8>(h.e, scale, inv);
      }
    }
    if constexpr (!LIFT) {
      for (int c = C + tid * 8; c < a.K_out; c += nt * 8)  // C % 8 == 0, K_out % 16 == 0
        *reinterpret_cast<uint2*>(o + c) = make_uint2(0, 0);
    } else {
      // codes are rewritten only after the next row's block_max barrier: this gather is done.
      for (int c = C + tid; c < a.nblk * a.m; c += nt) codes[c] = 0;
      __syncthreads();
      lift_gather_store(codes, a.m, a.L, a.nblk, o, a.K_out);
    }
  }
}

template <class T, bool LIFT, bool FP8>
Status launch_reg_t(const RowArgs& a, int64_t rows, cudaStream_t stream) {
  static int sms = 0;
  if (sms == 0) {
    int dev = 0;
    SS_CUDA_TRY(cudaGetDevice(&dev));
    SS_CUDA_TRY(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  }
  const int64_t chunks = a.C / 8;
  const int threads = static_cast<int>(
      std::max<int64_t>(64, ((chunks + kRegChunks - 1) / kRegChunks + 31) / 32 * 32));
  const size_t row = (static_cast<size_t>(a.C) * sizeof(T) + 15) & ~size_t{15};
  const size_t smem = row + (LIFT ? (static_cast<size_t>(a.C) + 47) & ~size_t{15} : 0);
  auto kernel = silu_quant_pipe_kernel<T, LIFT, FP8>;
  if (smem > 48 * 1024)
    SS_CUDA_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                     static_cast<int>(smem)));
  const int64_t grid = std::min<int64_t>(rows, 2 * static_cast<int64_t>(sms));
  kernel<<<static_cast<unsigned>(grid), threads, smem, stream>>>(a, static_cast<int>(rows));
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

template <class T>
Status launch_reg(const RowArgs& a, int mode, bool fp8, int64_t rows, cudaStream_t stream) {
  if (mode == kRowQuantLift)
    return fp8 ? launch_reg_t<T, true, true>(a, rows, stream)
               : launch_reg_t<T, true, false>(a, rows, stream);
  return fp8 ? launch_reg_t<T, false, true>(a, rows, stream)
             : launch_reg_t<T, false, false>(a, rows, stream);
}

}  // namespace

Status launch_silu_mul_prologue(DType t, const void* gu, int64_t ld, int64_t M, int64_t F,
                                const InputSlot& slot, cudaStream_t stream) {
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
  // Pipelined rows for W8A8 slots up to 512 threads x kRegChunks x 8 = 20480 columns.
  if (a.vec && mode != kRowLift && F <= 512 * kRegChunks * 8) {
    if (slot.M_pad == 0) return Status::Ok();
    return t == DType::kBF16 ? launch_reg<__nv_bfloat16>(a, mode, fp8, slot.M_pad, stream)
                             : launch_reg<__half>(a, mode, fp8, slot.M_pad, stream);
  }
  return launch_row_slot<kOpSiluMul>(t, a, mode, fp8, slot.M_pad, stream);
}

}  // namespace slidesparse::cuda::kernels
