// Shared pieces of the `tessera` command line: argument parsing and the subcommand table.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace tessera {
struct LoadOptions;
}

namespace tessera::cli {

// Parsed "--flag value" / "--flag=value" options (repeatable) and positional arguments.
struct Args {
  std::vector<std::string> positional;
  std::multimap<std::string, std::string> options;
  std::vector<std::string> switches;  // flags without a value, e.g. --help

  bool has(const std::string& flag) const;
  std::string get(const std::string& flag, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& flag) const;
};

// `value_flags` take a value; anything else starting with "--" is a switch.
Args parse_args(int argc, char** argv, const std::vector<std::string>& value_flags);

// --target, --passes, --threads, --inter-op, --isa, --precision, --tags, --no-cache: the options shared by run, bench
// and compile; `default_target` applies when --target is absent.
void apply_load_flags(const Args& args, LoadOptions& options, const std::string& default_target);
// --tags a,b: the MetaGraph's tag set (part of apply_load_flags).
void apply_tags_flag(const Args& args, LoadOptions& options);
// The value flags apply_load_flags reads, to pass to parse_args.
const std::vector<std::string>& load_value_flags();

int cmd_inspect(int argc, char** argv);
int cmd_compile(int argc, char** argv);
int cmd_passes(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_ops(int argc, char** argv);
int cmd_simulate(int argc, char** argv);  // cmd_simulate.cc (rdu target)
int cmd_rdu_cost(int argc, char** argv);  // cmd_rdu_cost.cc (rdu validation tool)
int cmd_serve(int argc, char** argv);     // cmd_serve.cc (TF-Serving-compatible model server)

}  // namespace tessera::cli
