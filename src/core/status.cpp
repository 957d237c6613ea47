// Status names and the internal assertion handler.
#include "slidesparse/status.h"

#include <cstdio>
#include <cstdlib>

namespace slidesparse {

const char* status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid argument";
    case StatusCode::kNotFound:
      return "not found";
    case StatusCode::kIoError:
      return "i/o error";
    case StatusCode::kFormatError:
      return "format error";
    case StatusCode::kUnsupported:
      return "unsupported";
    case StatusCode::kAlreadyExists:
      return "already exists";
    case StatusCode::kOutOfMemory:
      return "out of memory";
    case StatusCode::kCudaError:
      return "cuda error";
    case StatusCode::kInternal:
      return "internal error";
  }
  return "unknown";
}

std::string Status::to_string() const {
  if (ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

namespace detail {
void assert_fail(const char* cond, const char* file, int line) {
  std::fprintf(stderr, "slidesparse internal assertion failed: %s at %s:%d\n", cond, file, line);
  std::abort();
}
}  // namespace detail

}  // namespace slidesparse
