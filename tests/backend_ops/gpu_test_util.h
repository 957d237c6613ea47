// Shared helpers of the GPU op tests: device skip, RAII device buffers with poisoning, random
// inputs that are exactly representable in the activation dtype.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cuda/cuda_check.h"
#include "slidesparse/dtype.h"

namespace slidesparse::test {

#define SS_SKIP_WITHOUT_GPU()                                                  \
  do {                                                                         \
    ::slidesparse::Status ss_dev_ = ::slidesparse::cuda::check_device();       \
    if (!ss_dev_.ok()) GTEST_SKIP() << "no usable GPU: " << ss_dev_.message(); \
  } while (0)

#define SS_ASSERT_OK(expr)                          \
  do {                                              \
    ::slidesparse::Status ss_st_ = (expr);          \
    ASSERT_TRUE(ss_st_.ok()) << ss_st_.to_string(); \
  } while (0)

// Device copy of a host vector, plus poisoned output buffers.
template <class T>
cuda::DeviceBuffer to_device(const std::vector<T>& h) {
  cuda::DeviceBuffer b;
  EXPECT_TRUE(b.reserve(std::max<size_t>(h.size() * sizeof(T), 16)).ok());
  if (!h.empty()) cudaMemcpy(b.get(), h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  return b;
}
inline cuda::DeviceBuffer poisoned(size_t bytes, int byte = 0xAB) {
  cuda::DeviceBuffer b;
  EXPECT_TRUE(b.reserve(std::max<size_t>(bytes, 16)).ok());
  cudaMemset(b.get(), byte, std::max<size_t>(bytes, 16));
  return b;
}
template <class T>
std::vector<T> to_host(const cuda::DeviceBuffer& b, size_t count) {
  std::vector<T> h(count);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  if (count) cudaMemcpy(h.data(), b.get(), count * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

// Random activations in [-range, range], rounded to `t` (BF16/F16) so that fp32 copies are exact;
// a few exact zeros and -0.0, and (if M > 2) row 1 entirely zero.
struct Acts {
  std::vector<float> f32;     // [M, K]
  std::vector<uint16_t> raw;  // [M, K] in t
};
inline Acts random_acts(DType t, int64_t M, int64_t K, uint64_t seed, float range = 4.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-range, range);
  Acts a;
  a.f32.resize(M * K);
  a.raw.resize(M * K);
  for (int64_t i = 0; i < M * K; ++i) {
    float v = u(rng);
    if (rng() % 17 == 0) v = 0.0f;
    if (rng() % 19 == 0) v = -0.0f;
    if (M > 2 && i / K == 1) v = (i % 2) ? -0.0f : 0.0f;
    uint16_t r = t == DType::kF16 ? float_to_fp16(v) : float_to_bf16(v);
    a.raw[i] = r;
    a.f32[i] = t == DType::kF16 ? fp16_to_float(r) : bf16_to_float(r);
  }
  return a;
}

inline std::vector<float> random_f32(int64_t n, uint64_t seed, float range = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-range, range);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// Ordered integer view of a 16-bit float, for ulp distances (bf16 / fp16, finite).
inline int32_t ordered16(uint16_t b) {
  return (b & 0x8000) ? -static_cast<int32_t>(b & 0x7fff) : static_cast<int32_t>(b);
}

}  // namespace slidesparse::test
