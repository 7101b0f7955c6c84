// Turning Tessera errors into the TF status codes the front ends send to clients.
#pragma once
#include <exception>
#include <string>

#include "serve/server_core.h"
#include "support/error.h"

namespace tessera::serve {

inline ServeStatus make_status(::tensorflow::error::Code code, std::string message) {
  return ServeStatus{code, std::move(message)};
}

::tensorflow::error::Code to_tf_code(ErrorCode code);
// The status of the exception being handled (call inside a catch block).
ServeStatus status_from_current_exception();

}  // namespace tessera::serve
