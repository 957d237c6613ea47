// Device query used by every CUDA entry point: is there a GPU, and is it sm_80 or newer?
#include <cuda_runtime.h>

#include <atomic>
#include <string>

#include "cuda/cuda_check.h"

namespace slidesparse::cuda {

Status check_device(int* sm_out) {
  // A device that passed is not queried again (layers ask once each at load; the properties
  // query costs far more than a kernel launch).
  static std::atomic<int> passed_sm{0};
  if (const int v = passed_sm.load()) {
    if (sm_out) *sm_out = v;
    return Status::Ok();
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    cudaGetLastError();
    return unsupported("no CUDA device found (" + std::string(cudaGetErrorString(e)) + ")");
  }
  cudaDeviceProp prop{};
  e = cudaGetDeviceProperties(&prop, 0);
  if (e != cudaSuccess)
    return unsupported(std::string("cudaGetDeviceProperties: ") + cudaGetErrorString(e));
  int sm = prop.major * 10 + prop.minor;
  if (sm_out) *sm_out = sm;
  if (sm < 80) {
    return unsupported("GPU " + std::string(prop.name) + " is sm_" + std::to_string(sm) +
                       "; SlideSparse needs sm_80 or newer (sparse tensor cores)");
  }
  passed_sm.store(sm);
  return Status::Ok();
}

Status smem_optin_bytes(int* bytes) {
  static std::atomic<int> cached[16] = {};  // per device ordinal (0: not queried yet)
  int dev = 0;
  SS_CUDA_TRY(cudaGetDevice(&dev));
  std::atomic<int>* slot = dev >= 0 && dev < 16 ? &cached[dev] : nullptr;
  int v = slot ? slot->load() : 0;
  if (v == 0) {
    SS_CUDA_TRY(cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (slot) slot->store(v);
  }
  *bytes = v;
  return Status::Ok();
}

}  // namespace slidesparse::cuda
