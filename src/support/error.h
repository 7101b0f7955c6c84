// One error type for all of Tessera: a message that carries its own context (file, node, op)
// plus a status code that the server maps to gRPC/HTTP statuses.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace tessera {

enum class ErrorCode {
  kInvalidArgument,
  kNotFound,
  kFailedPrecondition,
  kUnimplemented,
  kOutOfRange,
  kResourceExhausted,
  kDataLoss,
  kInternal,
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, ErrorCode code = ErrorCode::kInvalidArgument)
      : std::runtime_error(std::move(message)), code_(code) {}
  ErrorCode code() const { return code_; }
  // Returns the same error with `context` prepended ("context: message").
  Error with_context(const std::string& context) const {
    return Error(context + ": " + what(), code_);
  }

 private:
  ErrorCode code_;
};

template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  throw Error(str_cat(args...));
}

template <typename... Args>
[[noreturn]] void fail_code(ErrorCode code, const Args&... args) {
  throw Error(str_cat(args...), code);
}

// Runs `body`; an Error escaping it gets `context` prepended. Used at layer boundaries so a
// message reads "loading model 'm': node 'dense/MatMul' (MatMul): inner detail".
template <typename F>
decltype(auto) with_context(const std::string& context, F&& body) {
  try {
    return body();
  } catch (const Error& e) {
    throw e.with_context(context);
  }
}

}  // namespace tessera

#define TS_CHECK(cond, ...)                      \
  do {                                           \
    if (!(cond)) ::tessera::fail(__VA_ARGS__);   \
  } while (0)
