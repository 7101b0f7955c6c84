// The compile driver: Module + signature -> function-form graph -> pass pipeline (with the
// restored variables, so read-only variables are frozen) -> an executable for the target.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/executable.h"

namespace tessera {

struct CompileOptions {
  std::string target = "cpu";  // "cpu" | "reference"
  // nullopt: the default pipeline; an empty list: no passes; else these passes in order.
  std::optional<std::vector<std::string>> passes;
  int threads = 0;   // cpu: intra-op threads, 0 = every core
  int inter_op = 0;  // cpu: independent steps run at once, 0 = the backend's default
  int concurrent_runs = 1;  // cpu: runs of one signature at once (cpu::CpuOptions::concurrent_runs)
  std::string isa;   // cpu: "" = TESSERA_ISA or the best available
  std::string precision = "fp32";  // cpu: "fp32" or "bf16" (matmul/conv, docs/bf16.md)
  bool verify = true;  // verify the graph after every pass
  // Called with (pass name, graph) after each pass, e.g. for --dump-ir-after.
  std::function<void(const std::string&, const Graph&)> after_pass;

  std::vector<std::string> pass_list() const;  // resolves nullopt to the default pipeline
  cpu::CpuOptions cpu_options() const {
    cpu::CpuOptions o;
    o.threads = threads;
    o.isa = isa;
    o.precision = precision;
    o.inter_op = inter_op;
    o.concurrent_runs = concurrent_runs;
    return o;
  }
};

// Parses "a,b,c" / "none" / "default" (or "") as given on the command line.
std::optional<std::vector<std::string>> parse_pass_list(const std::string& text);

// The optimised function-form graph of one signature (no executable yet).
CompiledSignature optimise_signature(const Module& module, const std::string& key, const ResourceStore* variables,
                                     const CompileOptions& options);

// optimise_signature + make_executable.
CompiledSignature compile_signature(const Module& module, const std::string& key, const ResourceStore* variables,
                                    const CompileOptions& options);

// compile_signature for inputs whose shapes differ from those the graph declares (TF does not
// enforce SignatureDef shapes): the signature graph's args take `shapes` (one per input, in
// signature order) and every node is re-inferred before the passes, so a node that cannot take
// them fails, named.
CompiledSignature compile_signature_for_shapes(const Module& module, const std::string& key,
                                               const std::vector<PartialShape>& shapes,
                                               const ResourceStore* variables, const CompileOptions& options);

// Signature metadata rebound to a function-form graph (inputs -> args, outputs -> results).
Signature bind_signature(const Signature& sig, const Graph& fn);

}  // namespace tessera
