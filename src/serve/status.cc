#include "serve/status.h"

namespace tessera::serve {

namespace tf = ::tensorflow::error;

tf::Code to_tf_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return tf::INVALID_ARGUMENT;
    case ErrorCode::kNotFound: return tf::NOT_FOUND;
    case ErrorCode::kFailedPrecondition: return tf::FAILED_PRECONDITION;
    case ErrorCode::kUnimplemented: return tf::UNIMPLEMENTED;
    case ErrorCode::kOutOfRange: return tf::OUT_OF_RANGE;
    case ErrorCode::kResourceExhausted: return tf::RESOURCE_EXHAUSTED;
    case ErrorCode::kDataLoss: return tf::DATA_LOSS;
    case ErrorCode::kInternal: return tf::INTERNAL;
  }
  return tf::UNKNOWN;
}

ServeStatus status_from_current_exception() {
  try {
    throw;
  } catch (const Error& e) {
    return make_status(to_tf_code(e.code()), e.what());
  } catch (const std::bad_alloc&) {
    return make_status(tf::RESOURCE_EXHAUSTED, "out of memory");
  } catch (const std::exception& e) {
    return make_status(tf::INTERNAL, e.what());
  } catch (...) {
    return make_status(tf::UNKNOWN, "unknown error");
  }
}

}  // namespace tessera::serve
