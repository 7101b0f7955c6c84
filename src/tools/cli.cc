#include "tools/cli.h"

#include <algorithm>

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

}  // namespace tessera::cli
