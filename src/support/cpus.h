// The machine's hardware threads, for defaults of "0: every core" options.
#pragma once
#include <algorithm>
#include <thread>

namespace tessera {

// std::thread::hardware_concurrency(), which may report 0 ("unknown"), as at least 1.
inline int cpu_count() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

}  // namespace tessera
