// Fused residual add + RMSNorm + quantize / lift: one CTA per slot row (row_ops.cuh), or, for the
// W8A8 norm without the residual add, one CTA per row with the row in registers (below).
#include <string>

#include "cuda/kernels/add_rmsnorm_prologue.cuh"
#include "cuda/kernels/row_ops.cuh"

namespace slidesparse::cuda::kernels {
namespace {

constexpr int kRegChunks = 8;        // 8-element chunks per thread at most
constexpr int kRegMaxThreads = 256;  // so C <= 256 * 8 * 8 = 16384

// The W8A8 norm without the residual add, the row in registers: one CTA of nt threads per row,
// KC chunks of 8 elements a thread, chunk k of thread t = elements (t + k * nt) * 8 (coalesced per
// k), all loads of x issued at once. FULL: C == 8 * KC * nt, every chunk in range (no per-chunk
// tests; Qwen2.5-7B's C = 3584: 64 threads x 7 chunks); otherwise chunks past C are skipped.
// Why not the CTA kernel: it spends ~48 instructions per element (ncu, H100: issue-bound at 46 %
// of the HBM peak): 7 warps of 16 elements a thread repeat the per-row work (reductions,
// divisions), and the row makes three trips through shared memory. Here the per-row work is
// shared by 56 elements a thread, nothing goes through shared memory but the reductions, the
// roundings go two per conversion (norm8x2), and a chunk with elements near a rounding boundary
// fixes just those (quant8_fix; quant8's int8 form redoes all 8, and that divergent exact path
// ran often here: x = amax / 2 gives y = 63.5 exactly, and a long row has such x). Element code,
// sum of squares (fp64, another order: the same mean, see row_kernel), scale rule and codes are
// row_kernel + quant_row_store's: the same bytes.
template <class T, bool FP8, bool LIFT68, int KC, bool FULL>
__global__ void __launch_bounds__(kRegMaxThreads) norm_reg_kernel(RowArgs a) {
  __shared__ double dred[32];
  __shared__ float red[32];
  const int64_t r = blockIdx.x;
  const int tid = threadIdx.x, nt = blockDim.x, C = a.C;
  uint8_t* o = static_cast<uint8_t*>(a.out) + r * a.K_out;
  if (r >= a.M) {  // padding rows of the slot are zero
    for (int c = tid * 16; c < a.K_out; c += nt * 16)
      *reinterpret_cast<uint4*>(o + c) = make_uint4(0, 0, 0, 0);
    return;
  }
  const T* x = static_cast<const T*>(a.x) + r * C + tid * 8;
  const T* w = static_cast<const T*>(a.w) + tid * 8;
  const int step = nt * 8;
  auto in_row = [&](int k) { return FULL || (tid + k * nt) * 8 < C; };
  Pack8<T> v[KC];
#pragma unroll
  for (int k = 0; k < KC; ++k)
    if (in_row(k)) v[k].u = __ldg(reinterpret_cast<const uint4*>(x + k * step));
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < KC; ++k)
    if (in_row(k)) ss = sumsq8(v[k].e, ss);
  ss = block_sum(ss, dred);
  const float mean = __double2float_rn(__ddiv_rn(ss, static_cast<double>(C)));
  const float inv = exact::rms_inv(mean, a.eps);
  T2<T> amax2;
  *reinterpret_cast<uint32_t*>(&amax2) = 0u;
#pragma unroll
  for (int k = 0; k < KC; ++k) {
    if (!in_row(k)) continue;
    Pack8<T> pw;
    pw.u = __ldg(reinterpret_cast<const uint4*>(w + k * step));
    norm8x2<T>(v[k].e, pw.e, inv, amax2);
  }
  const float2 am = unpack2(&amax2.x);  // >= 0: amax2 starts at +0
  const float amax = block_max(fmaxf(am.x, am.y), red);
  float inv_s;
  const float scale = row_scale(amax, a.qmax, &inv_s);
  if (tid == 0) a.scales[r] = scale;
  uint8_t* dst = o + (LIFT68 ? tid * 12 : tid * 8);
#pragma unroll
  for (int k = 0; k < KC; ++k) {
    if (!in_row(k)) continue;
    uint32_t bad;
    uint2 q = quant8_fast<T, FP8>(v[k].e, inv_s, &bad);
    if (bad) q = quant8_fix<T, FP8>(q, v[k].u, bad, scale);
    if constexpr (LIFT68)
      store_windows68(dst + k * nt * 12, q);
    else
      *reinterpret_cast<uint2*>(dst + k * step) = q;
  }
  if constexpr (LIFT68) {
    zero_tail4(o, C / 8 * 12, a.K_out);
  } else {
    for (int c = C + tid * 8; c < a.K_out; c += step)  // C % 8 == 0, K_out % 16 == 0
      *reinterpret_cast<uint2*>(o + c) = make_uint2(0, 0);
  }
}

template <class T, bool FP8, bool LIFT68, int KC, bool FULL>
Status launch_reg_k(const RowArgs& a, int threads, int64_t rows, cudaStream_t stream) {
  norm_reg_kernel<T, FP8, LIFT68, KC, FULL><<<static_cast<unsigned>(rows), threads, 0, stream>>>(a);
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

// The CTA size: the fewest warps that hold the row in <= kRegChunks chunks a thread, or a few
// more if then every thread gets the same whole number (5..8) of chunks (the FULL kernels).
template <class T, bool FP8, bool LIFT68>
Status launch_reg_t(const RowArgs& a, int64_t rows, cudaStream_t stream) {
  const int chunks = a.C / 8;
  const int min_warps = (chunks + 32 * kRegChunks - 1) / (32 * kRegChunks);
  for (int warps = min_warps; warps <= min_warps + 2 && warps * 32 <= kRegMaxThreads; ++warps) {
    if (chunks % (32 * warps) != 0) continue;
    switch (chunks / (32 * warps)) {
      case 8:
        return launch_reg_k<T, FP8, LIFT68, 8, true>(a, 32 * warps, rows, stream);
      case 7:
        return launch_reg_k<T, FP8, LIFT68, 7, true>(a, 32 * warps, rows, stream);
      case 6:
        return launch_reg_k<T, FP8, LIFT68, 6, true>(a, 32 * warps, rows, stream);
      case 5:
        return launch_reg_k<T, FP8, LIFT68, 5, true>(a, 32 * warps, rows, stream);
      default:
        break;
    }
  }
  return launch_reg_k<T, FP8, LIFT68, kRegChunks, false>(a, 32 * min_warps, rows, stream);
}

template <class T>
Status launch_reg(const RowArgs& a, bool fp8, bool lift68, int64_t rows, cudaStream_t stream) {
  if (lift68)
    return fp8 ? launch_reg_t<T, true, true>(a, rows, stream)
               : launch_reg_t<T, false, true>(a, rows, stream);
  return fp8 ? launch_reg_t<T, true, false>(a, rows, stream)
             : launch_reg_t<T, false, false>(a, rows, stream);
}

}  // namespace

bool add_rmsnorm_prologue_regs_supports(int64_t C, const InputSlot& slot, bool with_add) {
  if (with_add || C <= 0 || C % 8 != 0 || C > kRegChunks * 8 * kRegMaxThreads) return false;
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
  const bool regs_ok = add_rmsnorm_prologue_regs_supports(C, slot, d != nullptr) && a.vec;
  if (kernel == NormKernel::kRegs && !regs_ok)
    return unsupported(op + ": the register-row kernel runs the W8A8 norm without the residual " +
                       "add, plain or 6:8 codes, C % 8 == 0 and C <= 16384, aligned (C=" +
                       std::to_string(C) + ")");
  if (kernel != NormKernel::kCta && regs_ok) {
    if (slot.M_pad == 0) return Status::Ok();
    const bool lift68 = mode == kRowQuantLift;
    return t == DType::kBF16 ? launch_reg<__nv_bfloat16>(a, fp8, lift68, slot.M_pad, stream)
                             : launch_reg<__half>(a, fp8, lift68, slot.M_pad, stream);
  }
  return launch_row_slot<kOpAddRmsNorm>(t, a, mode, fp8, slot.M_pad, stream);
}

Status norm_kernel_parse(const char* name, NormKernel* out) {
  for (NormKernel k : {NormKernel::kCta, NormKernel::kRegs, NormKernel::kAuto})
    if (std::string(name) == norm_kernel_name(k)) {
      *out = k;
      return Status::Ok();
    }
  return invalid_argument(std::string("norm kernel '") + name + "' (expected cta, regs or auto)");
}

const char* norm_kernel_name(NormKernel k) {
  switch (k) {
    case NormKernel::kRegs:
      return "regs";
    case NormKernel::kAuto:
      return "auto";
    default:
      return "cta";
  }
}

}  // namespace slidesparse::cuda::kernels
