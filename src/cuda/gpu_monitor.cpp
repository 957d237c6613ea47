// NVML through dlopen: only the handful of entry points the monitor needs, declared here with
// NVML's C ABI (nvml.h: nvmlReturn_t is an int enum, nvmlDevice_t an opaque pointer).
#include "cuda/gpu_monitor.h"

#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>

namespace slidesparse::cuda {
namespace {

using NvmlInit = int (*)();
using NvmlByPci = int (*)(const char*, void**);
using NvmlClock = int (*)(void*, int, unsigned*);
using NvmlPower = int (*)(void*, unsigned*);
using NvmlReasons = int (*)(void*, unsigned long long*);
constexpr int kNvmlClockSm = 1;
constexpr unsigned long long kReasonSwPowerCap = 0x4ULL;

struct Nvml {
  NvmlClock clock = nullptr;
  NvmlPower power = nullptr;
  NvmlReasons reasons = nullptr;
};
Nvml g_nvml;

}  // namespace

GpuMonitor::GpuMonitor() {
  lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib_) {
    why_ = "libnvidia-ml.so.1 not found";
    return;
  }
  auto init = reinterpret_cast<NvmlInit>(dlsym(lib_, "nvmlInit_v2"));
  auto by_pci = reinterpret_cast<NvmlByPci>(dlsym(lib_, "nvmlDeviceGetHandleByPciBusId_v2"));
  g_nvml.clock = reinterpret_cast<NvmlClock>(dlsym(lib_, "nvmlDeviceGetClockInfo"));
  g_nvml.power = reinterpret_cast<NvmlPower>(dlsym(lib_, "nvmlDeviceGetPowerUsage"));
  g_nvml.reasons =
      reinterpret_cast<NvmlReasons>(dlsym(lib_, "nvmlDeviceGetCurrentClocksEventReasons"));
  if (!g_nvml.reasons)
    g_nvml.reasons =
        reinterpret_cast<NvmlReasons>(dlsym(lib_, "nvmlDeviceGetCurrentClocksThrottleReasons"));
  if (!init || !by_pci || !g_nvml.clock || !g_nvml.power) {
    why_ = "NVML entry points missing";
    return;
  }
  if (init() != 0) {
    why_ = "nvmlInit failed";
    return;
  }
  int d = 0;
  char bus[64] = {0};
  if (cudaGetDevice(&d) != cudaSuccess ||
      cudaDeviceGetPCIBusId(bus, sizeof(bus), d) != cudaSuccess) {
    cudaGetLastError();
    why_ = "no CUDA device";
    return;
  }
  void* h = nullptr;
  if (by_pci(bus, &h) != 0 || !h) {
    why_ = std::string("NVML has no device at ") + bus;
    return;
  }
  dev_ = h;
}

GpuMonitor::~GpuMonitor() {
  if (run_) stop();
  // NVML stays loaded: other monitors may share it and nvmlShutdown is reference counted anyway.
}

bool GpuMonitor::sample(GpuSample* s) const {
  unsigned mhz = 0, mw = 0;
  if (g_nvml.clock(dev_, kNvmlClockSm, &mhz) != 0) return false;
  if (g_nvml.power(dev_, &mw) != 0) return false;
  unsigned long long r = 0;
  if (g_nvml.reasons) g_nvml.reasons(dev_, &r);
  s->sm_mhz = mhz;
  s->power_w = mw / 1000.0;
  s->power_capped = (r & kReasonSwPowerCap) != 0;
  return true;
}

void GpuMonitor::start() {
  if (!available()) return;
  if (run_) stop();
  {
    std::lock_guard<std::mutex> g(mu_);
    samples_.clear();
  }
  run_ = true;
  th_ = std::thread([this] {
    while (run_) {
      GpuSample s;
      if (sample(&s)) {
        std::lock_guard<std::mutex> g(mu_);
        samples_.push_back(s);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
}

GpuStats GpuMonitor::stop() {
  GpuStats st;
  if (!available() || !run_) return st;
  run_ = false;
  if (th_.joinable()) th_.join();
  std::lock_guard<std::mutex> g(mu_);
  if (samples_.empty()) return st;
  std::vector<double> mhz;
  double pw = 0;
  int capped = 0;
  for (const GpuSample& s : samples_) {
    mhz.push_back(s.sm_mhz);
    pw += s.power_w;
    capped += s.power_capped ? 1 : 0;
  }
  std::sort(mhz.begin(), mhz.end());
  st.samples = static_cast<int>(samples_.size());
  st.sm_mhz_median = mhz[mhz.size() / 2];
  st.sm_mhz_min = mhz.front();
  st.power_w_mean = pw / samples_.size();
  st.power_capped_frac = static_cast<double>(capped) / samples_.size();
  return st;
}

}  // namespace slidesparse::cuda
