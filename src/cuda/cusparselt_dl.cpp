// cuSPARSELt through dlopen: the binary starts (and every CPU command works) on machines without
// the library; sparse GPU layers then fail with one clear kUnsupported error instead of the loader
// refusing to start the program. Every cusparseLt* function the project calls is defined here
// with the header's own prototype and forwards to the library's symbol.
// Library: $SLIDESPARSE_CUSPARSELT (a path), else libcusparseLt.so.0 on the loader's search path
// (LD_LIBRARY_PATH, ...), else the library found at build time (SS_CUSPARSELT_BUILD_PATH).
#include "cuda/cusparselt_dl.h"

#include <cusparseLt.h>
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

namespace slidesparse::cuda {
namespace {

struct Lib {
  void* handle = nullptr;
  std::string error;
};

const Lib& lib() {
  static const Lib l = [] {
    Lib r;
    std::string tried;
    auto try_open = [&](const std::string& name) {
      if (r.handle || name.empty()) return;
      r.handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!r.handle) {
        const char* e = dlerror();
        tried += (tried.empty() ? "" : "; ") + std::string(e ? e : name);
      }
    };
    if (const char* env = std::getenv("SLIDESPARSE_CUSPARSELT")) {
      try_open(env);  // an explicit path is the only one tried
    } else {
      try_open("libcusparseLt.so.0");
#ifdef SS_CUSPARSELT_BUILD_PATH
      try_open(SS_CUSPARSELT_BUILD_PATH);
#endif
    }
    if (!r.handle)
      r.error = "cuSPARSELt library not found (" + tried +
                "): run scripts/setup.sh, add its lib directory to LD_LIBRARY_PATH or set "
                "SLIDESPARSE_CUSPARSELT to the library's path";
    return r;
  }();
  return l;
}

// Every entry point defined below: all must resolve for the library to count as loaded.
constexpr const char* kForwarded[] = {
    "cusparseLtDenseDescriptorInit",    "cusparseLtDestroy",
    "cusparseLtGetErrorName",           "cusparseLtInit",
    "cusparseLtMatDescriptorDestroy",   "cusparseLtMatmul",
    "cusparseLtMatmulAlgGetAttribute",  "cusparseLtMatmulAlgSelectionDestroy",
    "cusparseLtMatmulAlgSelectionInit", "cusparseLtMatmulAlgSetAttribute",
    "cusparseLtMatmulDescriptorInit",   "cusparseLtMatmulGetWorkspace",
    "cusparseLtMatmulPlanDestroy",      "cusparseLtMatmulPlanInit",
    "cusparseLtMatmulSearch",           "cusparseLtSpMMACompress2",
    "cusparseLtSpMMACompressedSize2",   "cusparseLtStructuredDescriptorInit"};

template <class F>
F sym(const char* name) {
  const Lib& l = lib();
  return l.handle ? reinterpret_cast<F>(dlsym(l.handle, name)) : nullptr;
}

}  // namespace

Status cusparselt_load() {
  const Lib& l = lib();
  if (!l.handle) return {StatusCode::kUnsupported, l.error};
  for (const char* name : kForwarded)
    if (!sym<void*>(name))
      return {StatusCode::kUnsupported,
              std::string("cuSPARSELt library has no symbol ") + name + " (an older version?)"};
  return Status::Ok();
}

}  // namespace slidesparse::cuda

using slidesparse::cuda::sym;

extern "C" {

cusparseStatus_t CUSPARSELT_API cusparseLtDenseDescriptorInit(
    const cusparseLtHandle_t* handle, cusparseLtMatDescriptor_t* matDescr, int64_t rows,
    int64_t cols, int64_t ld, uint32_t alignment, cudaDataType valueType, cusparseOrder_t order) {
  static const auto f =
      sym<decltype(&cusparseLtDenseDescriptorInit)>("cusparseLtDenseDescriptorInit");
  return f ? f(handle, matDescr, rows, cols, ld, alignment, valueType, order)
           : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtDestroy(const cusparseLtHandle_t* handle) {
  static const auto f = sym<decltype(&cusparseLtDestroy)>("cusparseLtDestroy");
  return f ? f(handle) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

const char* CUSPARSELT_API cusparseLtGetErrorName(cusparseStatus_t status) {
  static const auto f = sym<decltype(&cusparseLtGetErrorName)>("cusparseLtGetErrorName");
  return f ? f(status) : "cuSPARSELt library not loaded";
}

cusparseStatus_t CUSPARSELT_API cusparseLtInit(cusparseLtHandle_t* handle) {
  static const auto f = sym<decltype(&cusparseLtInit)>("cusparseLtInit");
  return f ? f(handle) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API
cusparseLtMatDescriptorDestroy(const cusparseLtMatDescriptor_t* matDescr) {
  static const auto f =
      sym<decltype(&cusparseLtMatDescriptorDestroy)>("cusparseLtMatDescriptorDestroy");
  return f ? f(matDescr) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtMatmul(const cusparseLtHandle_t* handle,
                                                 const cusparseLtMatmulPlan_t* plan,
                                                 const void* alpha, const void* d_A,
                                                 const void* d_B, const void* beta, const void* d_C,
                                                 void* d_D, void* workspace, cudaStream_t* streams,
                                                 int32_t numStreams) {
  static const auto f = sym<decltype(&cusparseLtMatmul)>("cusparseLtMatmul");
  return f ? f(handle, plan, alpha, d_A, d_B, beta, d_C, d_D, workspace, streams, numStreams)
           : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtMatmulAlgGetAttribute(
    const cusparseLtHandle_t* handle, const cusparseLtMatmulAlgSelection_t* algSelection,
    cusparseLtMatmulAlgAttribute_t attribute, void* data, size_t dataSize) {
  static const auto f =
      sym<decltype(&cusparseLtMatmulAlgGetAttribute)>("cusparseLtMatmulAlgGetAttribute");
  return f ? f(handle, algSelection, attribute, data, dataSize) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API
cusparseLtMatmulAlgSelectionDestroy(const cusparseLtMatmulAlgSelection_t* algSelection) {
  static const auto f =
      sym<decltype(&cusparseLtMatmulAlgSelectionDestroy)>("cusparseLtMatmulAlgSelectionDestroy");
  return f ? f(algSelection) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtMatmulAlgSelectionInit(
    const cusparseLtHandle_t* handle, cusparseLtMatmulAlgSelection_t* algSelection,
    const cusparseLtMatmulDescriptor_t* matmulDescr, cusparseLtMatmulAlg_t alg) {
  static const auto f =
      sym<decltype(&cusparseLtMatmulAlgSelectionInit)>("cusparseLtMatmulAlgSelectionInit");
  return f ? f(handle, algSelection, matmulDescr, alg) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtMatmulAlgSetAttribute(
    const cusparseLtHandle_t* handle, cusparseLtMatmulAlgSelection_t* algSelection,
    cusparseLtMatmulAlgAttribute_t attribute, const void* data, size_t dataSize) {
  static const auto f =
      sym<decltype(&cusparseLtMatmulAlgSetAttribute)>("cusparseLtMatmulAlgSetAttribute");
  return f ? f(handle, algSelection, attribute, data, dataSize) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtMatmulDescriptorInit(
    const cusparseLtHandle_t* handle, cusparseLtMatmulDescriptor_t* matmulDescr,
    cusparseOperation_t opA, cusparseOperation_t opB, const cusparseLtMatDescriptor_t* matA,
    const cusparseLtMatDescriptor_t* matB, const cusparseLtMatDescriptor_t* matC,
    const cusparseLtMatDescriptor_t* matD, cusparseComputeType computeType) {
  static const auto f =
      sym<decltype(&cusparseLtMatmulDescriptorInit)>("cusparseLtMatmulDescriptorInit");
  return f ? f(handle, matmulDescr, opA, opB, matA, matB, matC, matD, computeType)
           : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtMatmulGetWorkspace(const cusparseLtHandle_t* handle,
                                                             const cusparseLtMatmulPlan_t* plan,
                                                             size_t* workspaceSize) {
  static const auto f =
      sym<decltype(&cusparseLtMatmulGetWorkspace)>("cusparseLtMatmulGetWorkspace");
  return f ? f(handle, plan, workspaceSize) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtMatmulPlanDestroy(const cusparseLtMatmulPlan_t* plan) {
  static const auto f = sym<decltype(&cusparseLtMatmulPlanDestroy)>("cusparseLtMatmulPlanDestroy");
  return f ? f(plan) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API
cusparseLtMatmulPlanInit(const cusparseLtHandle_t* handle, cusparseLtMatmulPlan_t* plan,
                         const cusparseLtMatmulDescriptor_t* matmulDescr,
                         const cusparseLtMatmulAlgSelection_t* algSelection) {
  static const auto f = sym<decltype(&cusparseLtMatmulPlanInit)>("cusparseLtMatmulPlanInit");
  return f ? f(handle, plan, matmulDescr, algSelection) : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtMatmulSearch(const cusparseLtHandle_t* handle,
                                                       cusparseLtMatmulPlan_t* plan,
                                                       const void* alpha, const void* d_A,
                                                       const void* d_B, const void* beta,
                                                       const void* d_C, void* d_D, void* workspace,
                                                       cudaStream_t* streams, int32_t numStreams) {
  static const auto f = sym<decltype(&cusparseLtMatmulSearch)>("cusparseLtMatmulSearch");
  return f ? f(handle, plan, alpha, d_A, d_B, beta, d_C, d_D, workspace, streams, numStreams)
           : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtSpMMACompress2(
    const cusparseLtHandle_t* handle, const cusparseLtMatDescriptor_t* sparseMatDescr,
    int isSparseA, cusparseOperation_t op, const void* d_dense, void* d_compressed,
    void* d_compressed_buffer, cudaStream_t stream) {
  static const auto f = sym<decltype(&cusparseLtSpMMACompress2)>("cusparseLtSpMMACompress2");
  return f ? f(handle, sparseMatDescr, isSparseA, op, d_dense, d_compressed, d_compressed_buffer,
               stream)
           : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtSpMMACompressedSize2(
    const cusparseLtHandle_t* handle, const cusparseLtMatDescriptor_t* sparseMatDescr,
    size_t* compressedSize, size_t* compressedBufferSize) {
  static const auto f =
      sym<decltype(&cusparseLtSpMMACompressedSize2)>("cusparseLtSpMMACompressedSize2");
  return f ? f(handle, sparseMatDescr, compressedSize, compressedBufferSize)
           : CUSPARSE_STATUS_NOT_INITIALIZED;
}

cusparseStatus_t CUSPARSELT_API cusparseLtStructuredDescriptorInit(
    const cusparseLtHandle_t* handle, cusparseLtMatDescriptor_t* matDescr, int64_t rows,
    int64_t cols, int64_t ld, uint32_t alignment, cudaDataType valueType, cusparseOrder_t order,
    cusparseLtSparsity_t sparsity) {
  static const auto f =
      sym<decltype(&cusparseLtStructuredDescriptorInit)>("cusparseLtStructuredDescriptorInit");
  return f ? f(handle, matDescr, rows, cols, ld, alignment, valueType, order, sparsity)
           : CUSPARSE_STATUS_NOT_INITIALIZED;
}

}  // extern "C"
