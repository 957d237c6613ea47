// SwiGLU: one thread per 8 outputs (16-byte loads of gate and up) when F, ld and the pointers
// allow it, else one per output; a 2-D grid over the [M, F] output.
#include "cuda/kernels/row_ops.cuh"
#include "cuda/kernels/silu_mul.cuh"

namespace slidesparse::cuda::kernels {
namespace {

template <class T, bool VEC, bool EXACT>
__global__ void silu_mul_kernel(const T* __restrict__ gu, int64_t ld, int64_t M, int64_t F,
                                T* __restrict__ out) {
  constexpr int V = VEC ? 8 : 1;
  const int64_t c = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * V;
  if (c >= F) return;
  for (int64_t r = blockIdx.y; r < M; r += gridDim.y) {
    const T* g = gu + r * ld + c;
    if constexpr (VEC) {
      Pack8<T> pg, pu, ph;
      pg.u = __ldg(reinterpret_cast<const uint4*>(g));
      pu.u = __ldg(reinterpret_cast<const uint4*>(g + F));
      silu_mul8<T, EXACT>(pg.e, pu.e, ph.e);
      *reinterpret_cast<uint4*>(out + r * F + c) = ph.u;
    } else {
      out[r * F + c] = silu_mul_elem<T, EXACT>(g[0], g[F]);
    }
  }
}

// Grid: x covers the row's chunks, y the rows (strided beyond 65535): no integer division.
template <class T, bool VEC, bool EXACT>
Status launch_t(const void* gu, int64_t ld, int64_t M, int64_t F, void* out, cudaStream_t s) {
  const int threads = 256;
  const int64_t per_row = F / (VEC ? 8 : 1);
  const dim3 grid(static_cast<unsigned>((per_row + threads - 1) / threads),
                  static_cast<unsigned>(std::min<int64_t>(M, 65535)));
  silu_mul_kernel<T, VEC, EXACT>
      <<<grid, threads, 0, s>>>(static_cast<const T*>(gu), ld, M, F, static_cast<T*>(out));
  SS_CUDA_TRY(cudaGetLastError());
  return Status::Ok();
}

template <class T, bool VEC>
Status launch_m(const void* gu, int64_t ld, int64_t M, int64_t F, void* out, cudaStream_t s,
                SiluMath math) {
  return math == SiluMath::kExact ? launch_t<T, VEC, true>(gu, ld, M, F, out, s)
                                  : launch_t<T, VEC, false>(gu, ld, M, F, out, s);
}

}  // namespace

const char* silu_math_name(SiluMath m) {
  return m == SiluMath::kExact ? "exact" : "fast";
}

Status silu_math_parse(const char* name, SiluMath* out) {
  for (SiluMath m : {SiluMath::kFast, SiluMath::kExact})
    if (std::string(name) == silu_math_name(m)) {
      *out = m;
      return Status::Ok();
    }
  return invalid_argument(std::string("SwiGLU math '") + name + "' (expected fast or exact)");
}

Status launch_silu_mul(DType t, const void* gu, int64_t ld, int64_t M, int64_t F, void* out,
                       cudaStream_t stream, SiluMath math) {
  SS_RETURN_IF_ERROR(check_16bit("silu_mul", t));
  if (M < 0 || F <= 0 || ld < 2 * F)
    return invalid_argument("silu_mul: bad sizes M=" + std::to_string(M) + " F=" +
                            std::to_string(F) + " ld=" + std::to_string(ld) + " (need ld >= 2F)");
  if (M == 0) return Status::Ok();
  if (!gu || !out) return invalid_argument("silu_mul: gu and out must not be null");
  const bool vec = F % 8 == 0 && ld % 8 == 0 && aligned16(gu) && aligned16(out);
  if (t == DType::kBF16)
    return vec ? launch_m<__nv_bfloat16, true>(gu, ld, M, F, out, stream, math)
               : launch_m<__nv_bfloat16, false>(gu, ld, M, F, out, stream, math);
  return vec ? launch_m<__half, true>(gu, ld, M, F, out, stream, math)
             : launch_m<__half, false>(gu, ld, M, F, out, stream, math);
}

}  // namespace slidesparse::cuda::kernels
