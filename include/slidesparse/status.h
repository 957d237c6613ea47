// Status and Expected<T>: the error model of every layer below tools/.
// A library function never exits or throws on bad input; it returns a Status whose message is one
// line naming the file/tensor and what was expected.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace slidesparse {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  // bad user input: pattern string, flag value, shape
  kNotFound,         // missing file or tensor
  kIoError,          // open/read/write/rename failed
  kFormatError,      // malformed file: safetensors, GGUF, JSON, tokenizer
  kUnsupported,      // valid but not supported: dtype, architecture, GPU
  kAlreadyExists,    // output exists and --force was not given
  kOutOfMemory,
  kCudaError,  // CUDA / cuBLASLt / cuSPARSELt call failed
  kInternal,   // broken invariant (a bug)
};

const char* status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>"
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status not_found(std::string m) {
  return {StatusCode::kNotFound, std::move(m)};
}
inline Status io_error(std::string m) {
  return {StatusCode::kIoError, std::move(m)};
}
inline Status format_error(std::string m) {
  return {StatusCode::kFormatError, std::move(m)};
}
inline Status unsupported(std::string m) {
  return {StatusCode::kUnsupported, std::move(m)};
}
inline Status already_exists(std::string m) {
  return {StatusCode::kAlreadyExists, std::move(m)};
}
inline Status internal_error(std::string m) {
  return {StatusCode::kInternal, std::move(m)};
}

// Either a value or a non-ok Status.
template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Expected(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace slidesparse

#define SS_CONCAT_INNER(a, b) a##b
#define SS_CONCAT(a, b) SS_CONCAT_INNER(a, b)

// Return the Status if it is not ok.
#define SS_RETURN_IF_ERROR(expr)               \
  do {                                         \
    ::slidesparse::Status ss_status_ = (expr); \
    if (!ss_status_.ok()) return ss_status_;   \
  } while (0)

// SS_ASSIGN_OR_RETURN(auto x, f()); — x is the value, or the Status is returned.
#define SS_ASSIGN_OR_RETURN(lhs, expr) \
  SS_ASSIGN_OR_RETURN_IMPL(SS_CONCAT(ss_exp_, __LINE__), lhs, expr)
#define SS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// Internal invariants only (never for user input): aborts with file:line.
#define SS_ASSERT(cond)                                                         \
  do {                                                                          \
    if (!(cond)) ::slidesparse::detail::assert_fail(#cond, __FILE__, __LINE__); \
  } while (0)

namespace slidesparse::detail {
[[noreturn]] void assert_fail(const char* cond, const char* file, int line);
}
