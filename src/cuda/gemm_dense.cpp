// cuBLASLt dense GEMM in the TN / column-major layout of DESIGN.md, plans cached by shape.
#include <cublasLt.h>

#include <string>

#include "cuda/gemm.h"

namespace slidesparse::cuda {
namespace {

Status cublas_status(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  return {StatusCode::kCudaError, std::string(call) + " failed: cublasStatus " + std::to_string(s) +
                                      " (" + file + ":" + std::to_string(line) + ")"};
}
#define SS_CUBLAS_TRY(call)                                                                     \
  do {                                                                                          \
    cublasStatus_t ss_s_ = (call);                                                              \
    if (ss_s_ != CUBLAS_STATUS_SUCCESS) return cublas_status(ss_s_, #call, __FILE__, __LINE__); \
  } while (0)

constexpr size_t kWorkspace = 64u << 20;
constexpr int kMaxCandidates = 16;

}  // namespace

DType gemm_out_dtype(DType in) {
  if (in == DType::kI8) return DType::kI32;
  if (in == DType::kF8E4M3) return DType::kF32;
  return in;
}

int64_t gemm_align(DType in) {
  return dtype_size(in) == 1 ? 32 : 16;
}

struct GemmDense::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  std::vector<cublasLtMatmulHeuristicResult_t> algos;
  ~Plan() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

Expected<std::unique_ptr<GemmDense>> GemmDense::create(DType in,
                                                       std::shared_ptr<DeviceBuffer> workspace) {
  if (in != DType::kBF16 && in != DType::kF16 && in != DType::kI8 && in != DType::kF8E4M3)
    return unsupported(std::string("cuBLASLt dense GEMM: dtype ") + dtype_name(in) +
                       " not supported (expected BF16, F16, I8 or F8_E4M3)");
  SS_RETURN_IF_ERROR(check_device());
  std::unique_ptr<GemmDense> g(new GemmDense(in));
  SS_CUBLAS_TRY(cublasLtCreate(&g->handle_));
  g->workspace_ = workspace ? std::move(workspace) : std::make_shared<DeviceBuffer>();
  SS_RETURN_IF_ERROR(g->workspace_->reserve(kWorkspace));
  return g;
}

GemmDense::GemmDense(DType in) : in_(in) {}

GemmDense::~GemmDense() {
  plans_.clear();
  if (handle_) cublasLtDestroy(handle_);
}

Status GemmDense::can_implement(int64_t M, int64_t N, int64_t K) const {
  if (M <= 0 || N <= 0 || K <= 0)
    return invalid_argument("dense GEMM: sizes must be positive, got M=" + std::to_string(M) +
                            " N=" + std::to_string(N) + " K=" + std::to_string(K));
  if (dtype_size(in_) == 1 && K % 16 != 0)
    return invalid_argument("dense GEMM: 8-bit operands need K % 16 == 0, got K=" +
                            std::to_string(K));
  return Status::Ok();
}

Expected<GemmDense::Plan*> GemmDense::plan(int64_t M, int64_t N, int64_t K, int64_t ldd) {
  auto key = std::make_tuple(M, N, K, ldd);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second.get();
  SS_RETURN_IF_ERROR(can_implement(M, N, K));
  auto p = std::make_unique<Plan>();
  const DType out = gemm_out_dtype(in_);
  const bool i8 = in_ == DType::kI8;
  cublasComputeType_t ct = i8 ? CUBLAS_COMPUTE_32I : CUBLAS_COMPUTE_32F;
  cudaDataType st = i8 ? CUDA_R_32I : CUDA_R_32F;
  SS_CUBLAS_TRY(cublasLtMatmulDescCreate(&p->op, ct, st));
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  SS_CUBLAS_TRY(
      cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  SS_CUBLAS_TRY(
      cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  // A = W stored column-major K x N (ld K), op T; B = X column-major K x M; D column-major N x M.
  SS_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->a, cuda_data_type(in_), K, N, K));
  SS_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->b, cuda_data_type(in_), K, M, K));
  SS_CUBLAS_TRY(cublasLtMatrixLayoutCreate(&p->d, cuda_data_type(out), N, M, ldd));
  cublasLtMatmulPreference_t pref = nullptr;
  SS_CUBLAS_TRY(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kWorkspace;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                       sizeof(ws));
  p->algos.resize(kMaxCandidates);
  int found = 0;
  cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(handle_, p->op, p->a, p->b, p->d, p->d, pref,
                                                    kMaxCandidates, p->algos.data(), &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS || found == 0)
    return unsupported(std::string("cuBLASLt has no algorithm for dense ") + dtype_name(in_) +
                       " GEMM M=" + std::to_string(M) + " N=" + std::to_string(N) +
                       " K=" + std::to_string(K) + " (cublasStatus " + std::to_string(s) + ")");
  p->algos.resize(found);
  Plan* raw = p.get();
  plans_[key] = std::move(p);
  return raw;
}

Expected<int> GemmDense::candidates(int64_t M, int64_t N, int64_t K, int64_t ldd, int max) {
  SS_ASSIGN_OR_RETURN(Plan * p, plan(M, N, K, ldd));
  return std::min<int>(max, static_cast<int>(p->algos.size()));
}

Status GemmDense::run(const void* w, const void* x, void* d, int64_t M, int64_t N, int64_t K,
                      int64_t ldd, int algo, cudaStream_t stream) {
  SS_ASSIGN_OR_RETURN(Plan * p, plan(M, N, K, ldd));
  if (algo >= static_cast<int>(p->algos.size())) algo = 0;
  const cublasLtMatmulAlgo_t* a = &p->algos[algo < 0 ? 0 : algo].algo;
  if (in_ == DType::kI8) {
    int32_t alpha = 1, beta = 0;
    SS_CUBLAS_TRY(cublasLtMatmul(handle_, p->op, &alpha, w, p->a, x, p->b, &beta, d, p->d, d, p->d,
                                 a, workspace_->get(), kWorkspace, stream));
  } else {
    float alpha = 1.0f, beta = 0.0f;
    SS_CUBLAS_TRY(cublasLtMatmul(handle_, p->op, &alpha, w, p->a, x, p->b, &beta, d, p->d, d, p->d,
                                 a, workspace_->get(), kWorkspace, stream));
  }
  return Status::Ok();
}

}  // namespace slidesparse::cuda
