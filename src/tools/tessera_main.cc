// `tessera`: the command-line front door. Each subcommand lives in its own cmd_*.cc.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "support/error.h"
#include "tools/cli.h"

namespace tessera::cli {
int cmd_data_dump(int argc, char** argv);  // cmd_data.cc (hidden: tests of the training I/O)
int cmd_grad(int argc, char** argv);       // cmd_grad.cc (hidden: tests of autodiff)
int cmd_train(int argc, char** argv);      // cmd_train.cc
int cmd_train_trace(int argc, char** argv);  // cmd_train_trace.cc (hidden: exact training tests)
}

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
  bool hidden = false;  // runs, but is not listed in the usage text
};

const Command kCommands[] = {
    {"inspect", tessera::cli::cmd_inspect, "show a model's signatures, ops and variables"},
    {"run", tessera::cli::cmd_run, "run a model signature on inputs from .npy/.npz/JSON"},
    {"compile", tessera::cli::cmd_compile, "compile a model to a .tsr artifact"},
    {"bench", tessera::cli::cmd_bench, "measure latency and throughput of a signature"},
    {"simulate", tessera::cli::cmd_simulate, "map a model onto an rdu chip and simulate it"},
    {"rdu-cost", tessera::cli::cmd_rdu_cost, "cost an IR text graph's rdu kernels (validation tool)"},
    {"train", tessera::cli::cmd_train, "train a SavedModel's variables (checkpoints, TensorBoard, export)"},
    {"serve", tessera::cli::cmd_serve, "serve models over TF Serving's gRPC and REST APIs"},
    {"passes", tessera::cli::cmd_passes, "list the optimisation passes"},
    {"ops", tessera::cli::cmd_ops, "list the ops Tessera supports"},
    {"data-dump", tessera::cli::cmd_data_dump, "read/write TFRecords, checkpoints, events", true},
    {"grad", tessera::cli::cmd_grad, "gradients of a loss w.r.t. variables or inputs, as .npz", true},
    {"train-trace", tessera::cli::cmd_train_trace, "train on in-order batches, write losses and variables", true},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: tessera <command> [args]\n\ncommands:\n");
  for (const Command& c : kCommands)
    if (!c.hidden) std::fprintf(out, "  %-10s %s\n", c.name, c.summary);
  std::fprintf(out, "\nrun 'tessera <command> --help' for a command's options\n");
}

// libgomp's default waiting spins up to 300000 times at every barrier while the team is no
// larger than the core count. With other busy processes on the cores a spinning thread holds
// a core its partner needs: MobileNetV2 batch 1 on 2 threads took ~0.7 s instead of ~30 ms on
// the loaded shared machine (src/backend/cpu/cpu_executable.h). Not spinning at all
// (OMP_WAIT_POLICY=passive) fixes that but costs a quiet machine dearly: MobileNetV2 b1 p50
// 5.9-6.9 ms passive vs 3.5-3.8 spinning. A short spin keeps both. 30000 was as fast as full
// spinning for inference, but a spinning OpenMP worker also holds the core that parallel_for's
// helper (threads.h) needs between oneDNN calls: with 3000, quiet machine, interleaved runs,
// the seed MLP train step (b256, 2 threads) went 38.1-38.7k -> 43.8-45.2k samples/s while
// MobileNetV2 b1 stayed at 1.04-1.10 ms p50 (30000: 1.03-1.10; passive 2.7-3.2; 1000: up to
// 1.9); with other jobs on the cores (load ~4.5) the train step ran 6.5-9.7k at 30000 and
// 24-26k at 0-1000. libgomp reads its environment when it is loaded, before main, so when the
// user has set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT the CLI re-executes itself once
// with GOMP_SPINCOUNT=3000.
void default_openmp_wait_policy(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT")) return;
  if (setenv("GOMP_SPINCOUNT", "3000", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

}  // namespace

int main(int argc, char** argv) {
  default_openmp_wait_policy(argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc - 2, argv + 2);
    } catch (const tessera::Error& e) {
      std::fprintf(stderr, "tessera %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tessera %s: internal error: %s\n", c.name, e.what());
      return 3;
    }
  }
  std::fprintf(stderr, "tessera: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}
