#include "runtime/executable.h"

#include <cstdlib>
#include <map>
#include <mutex>

#include "backend/cpu/isa.h"
#include "backend/rdu/simulator.h"
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

// The rdu target: maps the graph for the batch of each call onto the chip named by
// $TESSERA_RDU_CHIP (default "small") and runs the sectioned schedule (docs/rdu.md). Mappings
// are kept per batch size: mapping (placement search included) costs far more than a run.
class RduTargetExecutable : public Executable {
 public:
  explicit RduTargetExecutable(std::shared_ptr<const Graph> g)
      : graph_(std::move(g)), arch_(rdu::load_arch(std::getenv("TESSERA_RDU_CHIP") ? std::getenv("TESSERA_RDU_CHIP") : "small")) {}
  std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) const override {
    int64_t batch = std::max<int64_t>(!args.empty() && args[0].shape().size() > 0 ? args[0].shape()[0] : 1, 1);
    std::shared_ptr<const rdu::RduMapping> mapping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& slot = mappings_[batch];
      if (!slot) slot = std::make_shared<const rdu::RduMapping>(rdu::map_graph(*graph_, batch, arch_));
      mapping = slot;
    }
    return rdu::simulate_functional(*graph_, *mapping, args, variables);
  }
  std::string target() const override { return "rdu"; }

 private:
  std::shared_ptr<const Graph> graph_;
  rdu::Arch arch_;
  mutable std::mutex mu_;
  mutable std::map<int64_t, std::shared_ptr<const rdu::RduMapping>> mappings_;
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
  std::map<std::string, double> op_seconds() const override { return exe_->op_seconds(); }

 private:
  std::unique_ptr<cpu::CpuExecutable> exe_;
};

}  // namespace

std::shared_ptr<Executable> make_executable(const std::string& target, std::shared_ptr<const Graph> graph,
                                            const cpu::CpuOptions& options,
                                            const std::vector<cpu::PackedWeight>& prepacked) {
  if (target == "reference") return std::make_shared<ReferenceExecutable>(std::move(graph), "reference", "");
  if (target == "rdu") return std::make_shared<RduTargetExecutable>(std::move(graph));
  if (target != "cpu") fail_code(ErrorCode::kInvalidArgument, "unknown target '", target, "' (expected cpu, rdu or reference)");
  return std::make_shared<CpuTargetExecutable>(cpu::CpuExecutable::compile(std::move(graph), options, prepacked));
}

}  // namespace tessera
