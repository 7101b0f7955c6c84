// A signature compiled for one target: a function-form graph and what runs it. The "reference"
// target interprets the (optimised) graph with the reference kernels; "cpu" runs the cpu
// backend's plan. Executables are immutable after construction and safe to run concurrently.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/cpu/cpu_executable.h"
#include "ir/module.h"

namespace tessera {

class Executable {
 public:
  virtual ~Executable() = default;
  // One tensor per graph arg, in order; returns one tensor per graph result.
  virtual std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) const = 0;
  virtual std::vector<cpu::PackedWeight> packed_weights() const { return {}; }
  virtual std::string target() const = 0;
  virtual std::string isa() const { return ""; }
  virtual std::map<std::string, double> op_seconds() const { return {}; }  // cpu: see CpuExecutable
};

// Creates the executable for `target` ("cpu" or "reference"); `prepacked` comes from an artifact.
std::shared_ptr<Executable> make_executable(const std::string& target, std::shared_ptr<const Graph> graph,
                                            const cpu::CpuOptions& options,
                                            const std::vector<cpu::PackedWeight>& prepacked = {});

// The rdu target starting from a mapping stored in a .tsr (bytes of backend/rdu/mapping_codec.h,
// decoded and validated here; errors name `what`). Calls whose batch or chip differ re-map.
std::shared_ptr<Executable> make_rdu_executable(std::shared_ptr<const Graph> graph, const std::string& stored_mapping,
                                                const std::string& what);
// A compiled signature: its metadata (TensorSpec::value refers into `graph`: args for inputs,
// results for outputs), the function-form graph and the executable.
struct CompiledSignature {
  Signature signature;
  std::shared_ptr<const Graph> graph;
  std::shared_ptr<Executable> executable;
};

}  // namespace tessera
