#include "runtime/executable.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "backend/cpu/isa.h"
#include "backend/rdu/mapping_codec.h"
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
// $TESSERA_RDU_CHIP (default "small", or the chip of a mapping stored in the .tsr) and runs
// the sectioned schedule (docs/rdu.md). Mappings are kept per batch size: mapping (placement
// search included) costs far more than a run. A stored mapping serves its own batch.
class RduTargetExecutable : public Executable {
 public:
  explicit RduTargetExecutable(std::shared_ptr<const Graph> g)
      : graph_(std::move(g)), arch_(rdu::load_arch(std::getenv("TESSERA_RDU_CHIP") ? std::getenv("TESSERA_RDU_CHIP") : "small")) {}
  RduTargetExecutable(std::shared_ptr<const Graph> g, const std::string& stored, const std::string& what) : graph_(std::move(g)) {
    auto loaded = std::make_shared<rdu::StoredMapping>(rdu::decode_mapping(stored, *graph_, what));
    const char* env = std::getenv("TESSERA_RDU_CHIP");
    arch_ = env ? rdu::load_arch(env) : loaded->mapping.arch;
    options_ = loaded->options;
    if (rdu::same_arch(arch_, loaded->mapping.arch)) {
      mappings_[loaded->mapping.batch] = std::shared_ptr<const rdu::RduMapping>(loaded, &loaded->mapping);
      stored_batch_ = loaded->mapping.batch;
    } else {
      std::fprintf(stderr, "rdu: %s holds a mapping for chip '%s'; $TESSERA_RDU_CHIP is '%s': re-mapping\n", what.c_str(),
                   loaded->mapping.arch.name.c_str(), arch_.name.c_str());
    }
  }
  std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) const override {
    int64_t batch = std::max<int64_t>(!args.empty() && args[0].shape().size() > 0 ? args[0].shape()[0] : 1, 1);
    std::shared_ptr<const rdu::RduMapping> mapping;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto& slot = mappings_[batch];
      if (!slot) {
        if (stored_batch_ > 0 && !noted_)
          std::fprintf(stderr, "rdu: the stored mapping is for batch %lld; re-mapping for batch %lld\n",
                       static_cast<long long>(stored_batch_), static_cast<long long>(batch));
        noted_ = noted_ || stored_batch_ > 0;
        slot = std::make_shared<const rdu::RduMapping>(rdu::map_graph(*graph_, batch, arch_, options_));
      }
      mapping = slot;
    }
    return rdu::simulate_functional(*graph_, *mapping, args, variables);
  }
  std::string target() const override { return "rdu"; }

 private:
  std::shared_ptr<const Graph> graph_;
  rdu::Arch arch_;
  rdu::MapOptions options_;
  int64_t stored_batch_ = 0;
  mutable bool noted_ = false;
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

std::shared_ptr<Executable> make_rdu_executable(std::shared_ptr<const Graph> graph, const std::string& stored_mapping,
                                                const std::string& what) {
  return std::make_shared<RduTargetExecutable>(std::move(graph), stored_mapping, what);
}

std::shared_ptr<Executable> make_executable(const std::string& target, std::shared_ptr<const Graph> graph,
                                            const cpu::CpuOptions& options,
                                            const std::vector<cpu::PackedWeight>& prepacked) {
  if (target == "reference") return std::make_shared<ReferenceExecutable>(std::move(graph), "reference", "");
  if (target == "rdu") return std::make_shared<RduTargetExecutable>(std::move(graph));
  if (target != "cpu") fail_code(ErrorCode::kInvalidArgument, "unknown target '", target, "' (expected cpu, rdu or reference)");
  return std::make_shared<CpuTargetExecutable>(cpu::CpuExecutable::compile(std::move(graph), options, prepacked));
}

}  // namespace tessera
