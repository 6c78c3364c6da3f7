// IFEval (Zhou et al. 2023, google-research/instruction_following_eval): prompts with verifiable
// instructions. Every instruction type of the upstream registry has a verifier here
// (ifeval_verifiers.cpp) following its check_following rule. A response follows an instruction
//  - strictly: the response is non-empty and passes the check;
//  - loosely: some variant of it passes: the response, it without its first line, without its
//    last line, without both, and each of those four with every "*" removed.
// Prompt-level accuracy: all of a prompt's instructions followed; instruction-level: each one.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace optiq::eval::ifeval {

struct Prompt {
  int64_t key = 0;                           // the dataset's id
  std::string prompt;                        // the user's request
  std::vector<std::string> instruction_ids;  // e.g. "punctuation:no_comma"
  std::vector<nlohmann::json> kwargs;        // [instruction_ids.size()] arguments of each
};

// Whether optiq has a verifier for an instruction id.
bool is_supported(const std::string& instruction_id);
// Every instruction id optiq verifies, sorted.
std::vector<std::string> supported_instructions();

// Whether `response` follows instruction `id` with `kwargs` (null values count as absent), as
// the upstream check_following decides. `prompt` is the prompt (combination:repeat_prompt reads
// prompt_to_repeat from kwargs, as upstream). Throws std::invalid_argument for an unknown id or
// a missing argument.
bool check_instruction(const std::string& id, const nlohmann::json& kwargs, const std::string& response);

struct PromptResult {
  std::vector<bool> strict;  // [instruction_ids.size()] followed, strict rule
  std::vector<bool> loose;   // [instruction_ids.size()] followed, loose rule
  bool strict_all() const;
  bool loose_all() const;
};

PromptResult evaluate(const Prompt& prompt, const std::string& response);

}  // namespace optiq::eval::ifeval
