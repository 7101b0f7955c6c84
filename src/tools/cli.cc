#include "tools/cli.h"

#include <algorithm>

#include "backend/cpu/isa.h"
#include "runtime/model.h"
#include "support/error.h"

namespace tessera::cli {

bool Args::has(const std::string& flag) const {
  return options.count(flag) || std::find(switches.begin(), switches.end(), flag) != switches.end();
}

std::string Args::get(const std::string& flag, const std::string& fallback) const {
  auto it = options.find(flag);
  return it == options.end() ? fallback : it->second;
}

std::vector<std::string> Args::all(const std::string& flag) const {
  std::vector<std::string> out;
  auto [lo, hi] = options.equal_range(flag);
  for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  return out;
}

Args parse_args(int argc, char** argv, const std::vector<std::string>& value_flags) {
  Args args;
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      args.positional.push_back(a);
      continue;
    }
    std::string flag = a, value;
    bool has_value = false;
    if (auto eq = a.find('='); eq != std::string::npos) {
      flag = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    bool takes_value = std::find(value_flags.begin(), value_flags.end(), flag) != value_flags.end();
    if (takes_value && !has_value) {
      if (i + 1 >= argc) fail("option ", flag, " needs a value");
      value = argv[++i];
      has_value = true;
    }
    if (takes_value) args.options.emplace(flag, value);
    else if (has_value) fail("option ", flag, " takes no value");
    else args.switches.push_back(flag);
  }
  return args;
}

const std::vector<std::string>& load_value_flags() {
  static const std::vector<std::string> flags = {"--target", "--passes", "--threads", "--inter-op", "--isa", "--tags",
                                                 "--precision"};
  return flags;
}

void apply_load_flags(const Args& args, LoadOptions& options, const std::string& default_target) {
  options.target = args.get("--target", default_target);
  if (options.target != "cpu" && options.target != "reference" && options.target != "rdu")
    fail("--target '", options.target, "': expected cpu, rdu or reference");
  if (args.has("--passes")) options.passes = parse_pass_list(args.get("--passes"));
  auto count_flag = [&](const char* flag, int& out) {
    if (!args.has(flag)) return;
    std::string t = args.get(flag);
    try {
      size_t used = 0;
      out = std::stoi(t, &used);
      if (used != t.size() || out < 0) throw std::invalid_argument(t);
    } catch (const std::exception&) {
      fail(flag, " '", t, "': expected a non-negative integer");
    }
  };
  count_flag("--threads", options.threads);
  count_flag("--inter-op", options.inter_op);
  options.isa = args.get("--isa");
  if (!options.isa.empty()) cpu::resolve_isa(options.isa);  // unknown/unsupported ISAs fail here
  options.precision = args.get("--precision");
  if (!options.precision.empty()) cpu::check_precision(options.precision);
  apply_tags_flag(args, options);
  if (args.has("--no-cache")) options.use_cache = false;
  if (args.has("--training-signature")) options.training_signature = true;
}

void apply_tags_flag(const Args& args, LoadOptions& options) {
  if (!args.has("--tags")) return;
  options.tags.clear();
  std::string tags = args.get("--tags");
  for (size_t pos = 0; pos <= tags.size();) {
    size_t comma = tags.find(',', pos);
    if (comma == std::string::npos) comma = tags.size();
    if (comma > pos) options.tags.push_back(tags.substr(pos, comma - pos));
    pos = comma + 1;
  }
}

}  // namespace tessera::cli
