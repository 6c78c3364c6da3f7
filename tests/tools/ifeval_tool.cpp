// Test-only bridge for the Python oracle (tests/oracle/check_ifeval.py); not installed.
// Reads JSON lines {"ids": [...], "kwargs": [...], "response": "..."} from stdin and prints, per
// line, {"strict": [...], "loose": [...]}: optiq's IFEval verdicts for each instruction
// (ifeval::evaluate), or {"error": "..."} when a verifier rejects its arguments.
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/ifeval.h"

int main() {
  using nlohmann::json;
  for (std::string line; std::getline(std::cin, line);) {
    if (line.empty()) continue;
    const json in = json::parse(line);
    optiq::eval::ifeval::Prompt p;
    p.instruction_ids = in["ids"].get<std::vector<std::string>>();
    for (const json& kw : in["kwargs"]) p.kwargs.push_back(kw);
    json out;
    try {
      const auto r = optiq::eval::ifeval::evaluate(p, in["response"].get<std::string>());
      out = {{"strict", r.strict}, {"loose", r.loose}};
    } catch (const std::exception& e) {
      out = {{"error", e.what()}};
    }
    std::cout << out.dump() << "\n";
  }
  return 0;
}
