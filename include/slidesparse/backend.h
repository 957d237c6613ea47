// The compute backend of the engine: linear layers (dense fp32 or SlideSparse n:m with the
// reference arithmetic) and the few other ops of a Llama/Qwen2 layer, on host fp32 buffers.
// The CPU backend (src/cpu) is the reference; a CUDA backend implements the same interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "slidesparse/nm_tensor.h"
#include "slidesparse/status.h"

namespace slidesparse {

// y [M, N] = x [M, K] * W^T (+ bias).
class Linear {
 public:
  virtual ~Linear() = default;
  virtual int64_t N() const = 0;
  virtual int64_t K() const = 0;
  virtual std::string describe() const = 0;  // "dense f32", "6:8 int8"
  virtual void forward(const float* x, int64_t M, float* y) const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // w: [N, K] fp32; bias: [N] or empty.
  virtual std::unique_ptr<Linear> make_dense_linear(std::vector<float> w, int64_t N, int64_t K,
                                                    std::vector<float> bias) = 0;
  // SlideSparse linear over a compact n:m tensor (any pattern, quant none/int8/fp8): activations
  // quantized per token with quantize_rows, exactly the arithmetic of reference_sparse_linear
  // (int8: bit-exact int32 accumulators and epilogue; fp8/none: fp32 accumulation).
  virtual Expected<std::unique_ptr<Linear>> make_nm_linear(const NmTensor& w,
                                                           std::vector<float> bias) = 0;

  // y [M, C] = x / rms(x) * w, rms over each row with eps.
  virtual void rmsnorm(const float* x, const float* w, float* y, int64_t M, int64_t C,
                       float eps) const = 0;
  // Rotary embedding in place on x [M, heads * hd] (HF layout: pairs (i, i + hd/2)) at
  // positions pos[M], frequencies inv_freq[hd / 2].
  virtual void rope(float* x, int64_t M, int64_t heads, int64_t hd, const int64_t* pos,
                    const float* inv_freq) const = 0;
  // Causal GQA attention of n new queries q [n, H*hd] at positions pos0..pos0+n-1 over the cache
  // k, v [pos0 + n, KV*hd]; out [n, H*hd].
  virtual void attention(const float* q, const float* k, const float* v, float* out, int64_t n,
                         int64_t pos0, int64_t H, int64_t KV, int64_t hd) const = 0;
  // out = silu(g) * u, elementwise over count.
  virtual void silu_mul(const float* g, const float* u, float* out, int64_t count) const = 0;
};

std::unique_ptr<Backend> make_cpu_backend();

}  // namespace slidesparse
