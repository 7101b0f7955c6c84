#include "runtime/executable.h"

#include <cstdio>
#include <cstdlib>
#include <condition_variable>
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

// A CpuExecutable runs one call at a time (its arena and kernels belong to the run). With
// options.concurrent_runs > 1, a call that finds every copy busy makes another (up to that
// many, sharing the first one's packed weights) or waits for one to come back: a server's run
// threads then execute requests side by side, each on its own intra-op threads.
class CpuTargetExecutable : public Executable {
 public:
  CpuTargetExecutable(std::shared_ptr<const Graph> graph, const cpu::CpuOptions& options,
                      const std::vector<cpu::PackedWeight>& prepacked)
      : graph_(graph), options_(options), first_(cpu::CpuExecutable::compile(std::move(graph), options, prepacked)) {
    idle_.push_back(first_.get());
  }
  std::vector<Tensor> run(const std::vector<Tensor>& args, ResourceStore* variables) const override {
    if (options_.concurrent_runs <= 1) return first_->run(args, variables);
    cpu::CpuExecutable* exe = acquire();
    struct Release {
      const CpuTargetExecutable* self;
      cpu::CpuExecutable* exe;
      ~Release() { self->release(exe); }
    } release_on_exit{this, exe};
    return exe->run(args, variables);
  }
  std::vector<cpu::PackedWeight> packed_weights() const override { return first_->packed_weights(); }
  std::string target() const override { return "cpu"; }
  std::string isa() const override { return first_->isa(); }
  std::map<std::string, double> op_seconds() const override { return first_->op_seconds(); }

 private:
  cpu::CpuExecutable* acquire() const {
    std::unique_lock lock(mu_);
    while (idle_.empty()) {
      if (static_cast<int>(copies_.size()) + making_ + 1 < options_.concurrent_runs) {
        ++making_;
        lock.unlock();
        std::unique_ptr<cpu::CpuExecutable> copy;
        try {
          copy = cpu::CpuExecutable::compile(graph_, options_, first_->packed_weights());
        } catch (...) {
          lock.lock();
          --making_;  // the slot is free again for a later call
          throw;
        }
        lock.lock();
        --making_;
        copies_.push_back(std::move(copy));
        return copies_.back().get();
      }
      available_.wait(lock);
    }
    cpu::CpuExecutable* exe = idle_.back();
    idle_.pop_back();
    return exe;
  }
  void release(cpu::CpuExecutable* exe) const {
    {
      std::lock_guard lock(mu_);
      idle_.push_back(exe);
    }
    available_.notify_one();
  }

  std::shared_ptr<const Graph> graph_;
  cpu::CpuOptions options_;
  std::unique_ptr<cpu::CpuExecutable> first_;
  mutable std::mutex mu_;
  mutable std::condition_variable available_;
  mutable std::vector<cpu::CpuExecutable*> idle_;
  mutable std::vector<std::unique_ptr<cpu::CpuExecutable>> copies_;
  mutable int making_ = 0;
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
  return std::make_shared<CpuTargetExecutable>(std::move(graph), options, prepacked);
}

}  // namespace tessera
