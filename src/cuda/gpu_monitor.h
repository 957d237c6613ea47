// Clocks and power while a benchmark runs: NVML (loaded with dlopen, so binaries start on machines
// without a driver) sampled by a background thread between start() and stop(). Used by
// `bench kernel` / `bench e2e` to show whether a speedup is lost to power-capped clocks.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace slidesparse::cuda {

struct GpuSample {
  double sm_mhz = 0, power_w = 0;
  bool power_capped = false;  // NVML clock event reason "SW power cap" active
};

struct GpuStats {
  int samples = 0;
  double sm_mhz_median = 0, sm_mhz_min = 0, power_w_mean = 0;
  double power_capped_frac = 0;  // fraction of samples with the power-cap reason set
};

class GpuMonitor {
 public:
  GpuMonitor();  // loads NVML for the current CUDA device; available() false when it cannot
  ~GpuMonitor();
  GpuMonitor(const GpuMonitor&) = delete;
  GpuMonitor& operator=(const GpuMonitor&) = delete;
  bool available() const { return dev_ != nullptr; }
  const std::string& why_unavailable() const { return why_; }
  void start();     // clears the samples and starts polling (every ~5 ms)
  GpuStats stop();  // stops polling and summarizes what was sampled since start()

 private:
  bool sample(GpuSample* s) const;
  void* lib_ = nullptr;
  void* dev_ = nullptr;
  std::string why_;
  std::thread th_;
  std::atomic<bool> run_{false};
  std::mutex mu_;
  std::vector<GpuSample> samples_;
};

}  // namespace slidesparse::cuda
