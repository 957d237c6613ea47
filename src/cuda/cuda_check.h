// Error plumbing and RAII device memory for the CUDA backend: SS_CUDA_TRY / SS_CUBLAS_TRY /
// SS_CUSPARSELT_TRY turn a failed call into a Status naming the call and file:line.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <utility>

#include "slidesparse/status.h"

namespace slidesparse::cuda {

inline Status cuda_status(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return Status::Ok();
  return {StatusCode::kCudaError, std::string(call) + " failed: " + cudaGetErrorString(e) + " (" +
                                      file + ":" + std::to_string(line) + ")"};
}

// Ok when device 0 exists and is sm_80 or newer; otherwise kUnsupported naming why.
Status check_device(int* sm_out = nullptr);

// The current device's opt-in shared memory per block (bytes), queried once per device.
Status smem_optin_bytes(int* bytes);

// Owning device allocation; never copied.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(o.bytes_) {
    o.bytes_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      ptr_ = std::exchange(o.ptr_, nullptr);
      bytes_ = std::exchange(o.bytes_, 0);
    }
    return *this;
  }
  // Grows to at least `bytes` (contents are not kept when it grows).
  Status reserve(size_t bytes) {
    if (bytes <= bytes_) return Status::Ok();
    reset();
    cudaError_t e = cudaMalloc(&ptr_, bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      ptr_ = nullptr;
      return {StatusCode::kOutOfMemory,
              "cudaMalloc of " + std::to_string(bytes) + " bytes failed: " + cudaGetErrorString(e)};
    }
    bytes_ = bytes;
    return Status::Ok();
  }
  void reset() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    bytes_ = 0;
  }
  void* get() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

inline int64_t round_up(int64_t v, int64_t a) {
  return (v + a - 1) / a * a;
}

}  // namespace slidesparse::cuda

#define SS_CUDA_TRY(call)                                                         \
  do {                                                                            \
    cudaError_t ss_e_ = (call);                                                   \
    if (ss_e_ != cudaSuccess) {                                                   \
      (void)cudaGetLastError(); /* a non-sticky error must not resurface later */ \
      return ::slidesparse::cuda::cuda_status(ss_e_, #call, __FILE__, __LINE__);  \
    }                                                                             \
  } while (0)

// After a kernel launch: the launch error (bad config) as a Status.
#define SS_CUDA_LAUNCH_CHECK(name) \
  SS_CUDA_TRY(cudaGetLastError()); \
  (void)name
