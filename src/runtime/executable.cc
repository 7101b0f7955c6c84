#include "runtime/executable.h"

#include "backend/cpu/isa.h"
#include "ir/interpreter.h"

namespace tessera {
namespace {

class ReferenceExecutable : public Executable {
 public:
  explicit ReferenceExecutable(std::shared_ptr<const Graph> g, std::string target, std::string isa)
      : graph_(std::move(g)), target_(std::move(target)), isa_(std::move(isa)) {}
  std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) const override {
    return call_function(*graph_, args, variables);
  }
  std::string target() const override { return target_; }
  std::string isa() const override { return isa_; }

 private:
  std::shared_ptr<const Graph> graph_;
  std::string target_, isa_;
};

class CpuTargetExecutable : public Executable {
 public:
  explicit CpuTargetExecutable(std::unique_ptr<cpu::CpuExecutable> exe) : exe_(std::move(exe)) {}
  std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) const override {
    return exe_->run(args, variables);
  }
  std::vector<cpu::PackedWeight> packed_weights() const override { return exe_->packed_weights(); }
  std::string target() const override { return "cpu"; }
  std::string isa() const override { return exe_->isa(); }

 private:
  std::unique_ptr<cpu::CpuExecutable> exe_;
};

}  // namespace

std::shared_ptr<Executable> make_executable(const std::string& target, std::shared_ptr<const Graph> graph,
                                            const cpu::CpuOptions& options,
                                            const std::vector<cpu::PackedWeight>& prepacked) {
  if (target == "reference") return std::make_shared<ReferenceExecutable>(std::move(graph), "reference", "");
  if (target != "cpu") fail_code(ErrorCode::kInvalidArgument, "unknown target '", target, "' (expected cpu or reference)");
  return std::make_shared<CpuTargetExecutable>(cpu::CpuExecutable::compile(std::move(graph), options, prepacked));
}

}  // namespace tessera
