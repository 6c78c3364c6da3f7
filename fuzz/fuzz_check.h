// Helpers shared by the libFuzzer targets. A broken promise of a parser is reported by
// aborting, which libFuzzer records as a crash with the input that caused it.
#pragma once

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

namespace optiq::fuzz {

inline void require(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz invariant violated: %s\n", what.c_str());
  std::abort();
}

// Reads every byte of a view the parser handed out, so a view that reaches outside the input
// buffer is an ASan report here rather than a silent wrong answer later.
inline void touch(std::span<const std::byte> bytes) {
  unsigned sum = 0;
  for (std::byte b : bytes) sum += static_cast<unsigned>(b);
  // volatile keeps the compiler from dropping reads whose result is unused.
  volatile unsigned sink = sum;
  (void)sink;
}

}  // namespace optiq::fuzz
