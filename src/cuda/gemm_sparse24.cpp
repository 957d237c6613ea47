// cuSPARSELt 2:4 GEMM: the structured operand is the slided weight W' (A, op T, column-major
// K' x N = row-major [N, K']), compressed once; plans cached by (M_pad, algorithm).
#include <cusparseLt.h>

#include <mutex>
#include <string>

#include "cuda/cusparselt_dl.h"
#include "cuda/gemm.h"

namespace slidesparse::cuda {
namespace {

Status lt_status(cusparseStatus_t s, const char* call, const char* file, int line) {
  if (s == CUSPARSE_STATUS_SUCCESS) return Status::Ok();
  return {StatusCode::kCudaError, std::string(call) + " failed: " + cusparseLtGetErrorName(s) +
                                      " (" + file + ":" + std::to_string(line) + ")"};
}
#define SS_CUSPARSELT_TRY(call)                                                               \
  do {                                                                                        \
    cusparseStatus_t ss_s_ = (call);                                                          \
    if (ss_s_ != CUSPARSE_STATUS_SUCCESS) return lt_status(ss_s_, #call, __FILE__, __LINE__); \
  } while (0)

}  // namespace

std::string SparseAlgo::str() const {
  if (alg_id < 0) return "heuristic";
  return "alg" + std::to_string(alg_id) + "/splitk" + std::to_string(split_k) +
         (split_k_mode ? "/mode" + std::to_string(split_k_mode) : "") +
         (split_k_buffers ? "/buf" + std::to_string(split_k_buffers) : "");
}

// The library handle, shared by every sparse GEMM alive (cusparseLtInit costs milliseconds).
class LtHandle {
 public:
  cusparseLtHandle_t h{};
  ~LtHandle() { cusparseLtDestroy(&h); }
  static Expected<std::shared_ptr<LtHandle>> get() {
    static std::mutex mu;
    static std::weak_ptr<LtHandle> cached;
    std::lock_guard<std::mutex> lock(mu);
    if (auto p = cached.lock()) return p;
    SS_RETURN_IF_ERROR(cusparselt_load());
    auto p = std::make_shared<LtHandle>();
    cusparseStatus_t s = cusparseLtInit(&p->h);
    if (s != CUSPARSE_STATUS_SUCCESS) {
      p.reset();  // never initialized: do not destroy
      return Status{StatusCode::kUnsupported,
                    std::string("cuSPARSELt unavailable: cusparseLtInit failed: ") +
                        cusparseLtGetErrorName(s)};
    }
    cached = p;
    return p;
  }
};

struct GemmSparse24::Plan {
  const cusparseLtHandle_t* h = nullptr;
  cusparseLtMatDescriptor_t b{}, d{};
  cusparseLtMatmulDescriptor_t mm{};
  cusparseLtMatmulAlgSelection_t sel{};
  cusparseLtMatmulPlan_t plan{};
  bool has_b = false, has_d = false, has_sel = false, has_plan = false;
  size_t workspace = 0;
  ~Plan() {
    if (has_plan) cusparseLtMatmulPlanDestroy(&plan);
    if (has_sel) cusparseLtMatmulAlgSelectionDestroy(&sel);
    if (has_d) cusparseLtMatDescriptorDestroy(&d);
    if (has_b) cusparseLtMatDescriptorDestroy(&b);
  }
};

Expected<std::unique_ptr<GemmSparse24>> GemmSparse24::create(DType in, int64_t N_pad, int64_t K_pad,
                                                             const void* w_dense,
                                                             cudaStream_t stream) {
  if (in != DType::kBF16 && in != DType::kF16 && in != DType::kI8 && in != DType::kF8E4M3)
    return unsupported(std::string("cuSPARSELt 2:4 GEMM: dtype ") + dtype_name(in) +
                       " not supported (expected BF16, F16, I8 or F8_E4M3)");
  int64_t al = gemm_align(in);
  if (N_pad <= 0 || K_pad <= 0 || N_pad % al || K_pad % al)
    return invalid_argument("cuSPARSELt 2:4 GEMM: N_pad=" + std::to_string(N_pad) + " and K_pad=" +
                            std::to_string(K_pad) + " must be multiples of " + std::to_string(al));
  SS_RETURN_IF_ERROR(check_device());
  std::unique_ptr<GemmSparse24> g(new GemmSparse24());
  g->in_ = in;
  g->N_pad_ = N_pad;
  g->K_pad_ = K_pad;
  SS_ASSIGN_OR_RETURN(g->lt_, LtHandle::get());
  const cusparseLtHandle_t* h = &g->lt_->h;
  auto a = std::make_unique<cusparseLtMatDescriptor_t>();
  SS_CUSPARSELT_TRY(cusparseLtStructuredDescriptorInit(h, a.get(), K_pad, N_pad, K_pad, 16,
                                                       cuda_data_type(in), CUSPARSE_ORDER_COL,
                                                       CUSPARSELT_SPARSITY_50_PERCENT));
  g->matA_ = std::move(a);
  size_t csize = 0, cbuf = 0;
  SS_CUSPARSELT_TRY(cusparseLtSpMMACompressedSize2(h, g->matA_.get(), &csize, &cbuf));
  // cuSPARSELt 0.8.0's sm90 int8 kernels read up to one K tile past the compressed size it reports
  // for small N (compute-sanitizer memcheck on the H100: a 1024-byte read 512 bytes past a
  // 6656-byte buffer, N=64, K'=160). Allocate a zeroed slack so those reads stay in bounds.
  constexpr size_t kCompressedSlack = 64 << 10;
  SS_RETURN_IF_ERROR(g->compressed_.reserve(csize + kCompressedSlack));
  SS_CUDA_TRY(cudaMemsetAsync(g->compressed_.get(), 0, csize + kCompressedSlack, stream));
  DeviceBuffer tmp;
  SS_RETURN_IF_ERROR(tmp.reserve(cbuf > 0 ? cbuf : 1));
  SS_CUSPARSELT_TRY(cusparseLtSpMMACompress2(h, g->matA_.get(), 1, CUSPARSE_OPERATION_TRANSPOSE,
                                             w_dense, g->compressed_.get(), tmp.get(), stream));
  SS_CUDA_TRY(cudaStreamSynchronize(stream));  // tmp is freed next: load time, not the hot path
  return g;
}

GemmSparse24::GemmSparse24() = default;

GemmSparse24::~GemmSparse24() {
  plans_.clear();
  if (matA_) cusparseLtMatDescriptorDestroy(matA_.get());
}

Status GemmSparse24::can_implement(int64_t M_pad) const {
  if (M_pad <= 0 || M_pad % gemm_align(in_))
    return invalid_argument("cuSPARSELt 2:4 GEMM: M_pad=" + std::to_string(M_pad) +
                            " must be a positive multiple of " + std::to_string(gemm_align(in_)));
  return Status::Ok();
}

Expected<GemmSparse24::Plan*> GemmSparse24::plan(int64_t M_pad, const SparseAlgo& algo) {
  auto key = std::make_pair(M_pad, algo);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  SS_RETURN_IF_ERROR(can_implement(M_pad));
  const cusparseLtHandle_t* h = &lt_->h;
  auto p = std::make_unique<Plan>();
  p->h = h;
  const DType out = gemm_out_dtype(in_);
  SS_CUSPARSELT_TRY(cusparseLtDenseDescriptorInit(h, &p->b, K_pad_, M_pad, K_pad_, 16,
                                                  cuda_data_type(in_), CUSPARSE_ORDER_COL));
  p->has_b = true;
  SS_CUSPARSELT_TRY(cusparseLtDenseDescriptorInit(h, &p->d, N_pad_, M_pad, N_pad_, 16,
                                                  cuda_data_type(out), CUSPARSE_ORDER_COL));
  p->has_d = true;
  cusparseComputeType ct = in_ == DType::kI8 ? CUSPARSE_COMPUTE_32I : CUSPARSE_COMPUTE_32F;
  SS_CUSPARSELT_TRY(cusparseLtMatmulDescriptorInit(h, &p->mm, CUSPARSE_OPERATION_TRANSPOSE,
                                                   CUSPARSE_OPERATION_NON_TRANSPOSE, matA_.get(),
                                                   &p->b, &p->d, &p->d, ct));
  SS_CUSPARSELT_TRY(
      cusparseLtMatmulAlgSelectionInit(h, &p->sel, &p->mm, CUSPARSELT_MATMUL_ALG_DEFAULT));
  p->has_sel = true;
  if (algo.alg_id >= 0) {
    int v = algo.alg_id;
    SS_CUSPARSELT_TRY(cusparseLtMatmulAlgSetAttribute(h, &p->sel, CUSPARSELT_MATMUL_ALG_CONFIG_ID,
                                                      &v, sizeof(v)));
    v = algo.split_k;
    SS_CUSPARSELT_TRY(
        cusparseLtMatmulAlgSetAttribute(h, &p->sel, CUSPARSELT_MATMUL_SPLIT_K, &v, sizeof(v)));
    if (algo.split_k_mode > 0) {
      v = algo.split_k_mode;
      SS_CUSPARSELT_TRY(cusparseLtMatmulAlgSetAttribute(h, &p->sel, CUSPARSELT_MATMUL_SPLIT_K_MODE,
                                                        &v, sizeof(v)));
    }
    if (algo.split_k_buffers > 0) {
      v = algo.split_k_buffers;
      SS_CUSPARSELT_TRY(cusparseLtMatmulAlgSetAttribute(
          h, &p->sel, CUSPARSELT_MATMUL_SPLIT_K_BUFFERS, &v, sizeof(v)));
    }
  }
  SS_CUSPARSELT_TRY(cusparseLtMatmulPlanInit(h, &p->plan, &p->mm, &p->sel));
  p->has_plan = true;
  SS_CUSPARSELT_TRY(cusparseLtMatmulGetWorkspace(h, &p->plan, &p->workspace));
  SS_RETURN_IF_ERROR(workspace_.reserve(p->workspace > 0 ? p->workspace : 256));
  Plan* raw = p.get();
  plans_[key] = std::move(p);
  return raw;
}

Expected<int> GemmSparse24::max_alg_id(int64_t M_pad) {
  SS_ASSIGN_OR_RETURN(Plan * p, plan(M_pad, SparseAlgo{}));
  int v = 0;
  SS_CUSPARSELT_TRY(cusparseLtMatmulAlgGetAttribute(
      p->h, &p->sel, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, &v, sizeof(v)));
  return v;
}

Status GemmSparse24::run(const void* x, void* d, int64_t M_pad, const SparseAlgo& algo,
                         cudaStream_t stream) {
  SS_ASSIGN_OR_RETURN(Plan * p, plan(M_pad, algo));
  float alpha = 1.0f, beta = 0.0f;
  SS_CUSPARSELT_TRY(cusparseLtMatmul(p->h, &p->plan, &alpha, compressed_.get(), x, &beta, d, d,
                                     workspace_.get(), &stream, 1));
  return Status::Ok();
}

Expected<SparseAlgo> GemmSparse24::search(const void* x, void* d, int64_t M_pad,
                                          cudaStream_t stream) {
  // A fresh plan (not cached under the heuristic key) that the search may modify.
  SS_RETURN_IF_ERROR(can_implement(M_pad));
  SS_ASSIGN_OR_RETURN(Plan * base, plan(M_pad, SparseAlgo{}));
  float alpha = 1.0f, beta = 0.0f;
  SS_CUSPARSELT_TRY(cusparseLtMatmulSearch(base->h, &base->plan, &alpha, compressed_.get(), x,
                                           &beta, d, d, workspace_.get(), &stream, 1));
  SparseAlgo a;
  SS_CUSPARSELT_TRY(cusparseLtMatmulAlgGetAttribute(
      base->h, &base->sel, CUSPARSELT_MATMUL_ALG_CONFIG_ID, &a.alg_id, sizeof(int)));
  SS_CUSPARSELT_TRY(cusparseLtMatmulAlgGetAttribute(base->h, &base->sel, CUSPARSELT_MATMUL_SPLIT_K,
                                                    &a.split_k, sizeof(int)));
  SS_CUSPARSELT_TRY(cusparseLtMatmulAlgGetAttribute(
      base->h, &base->sel, CUSPARSELT_MATMUL_SPLIT_K_MODE, &a.split_k_mode, sizeof(int)));
  SS_CUSPARSELT_TRY(cusparseLtMatmulAlgGetAttribute(
      base->h, &base->sel, CUSPARSELT_MATMUL_SPLIT_K_BUFFERS, &a.split_k_buffers, sizeof(int)));
  // The heuristic plan was modified by the search: drop it so "heuristic" stays the heuristic.
  plans_.erase(std::make_pair(M_pad, SparseAlgo{}));
  return a;
}

}  // namespace slidesparse::cuda
