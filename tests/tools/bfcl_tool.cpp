// Test-only bridge for the Python oracle (tests/oracle/check_bfcl.py); not installed.
// Reads JSON lines {"function": {...}, "answer": {...}, "reply": "..."} from stdin and prints,
// per line, {"parsed": bool, "valid": bool, "error": "..."}: optiq's parse of the reply and
// its BFCL simple-category AST verdict.
#include <iostream>
#include <string>

#include "eval/bfcl.h"

int main() {
  using optiq::eval::bfcl::ojson;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    const ojson in = ojson::parse(line);
    const auto parsed = optiq::eval::bfcl::parse_calls(in["reply"].get<std::string>());
    ojson out = {{"parsed", parsed.ok}, {"valid", false}, {"error", parsed.error}};
    if (parsed.ok) {
      const auto check = optiq::eval::bfcl::check_simple(in["function"], parsed.calls, in["answer"]);
      out["valid"] = check.valid;
      out["error"] = check.error;
    }
    std::cout << out.dump() << "\n";
  }
  return 0;
}
