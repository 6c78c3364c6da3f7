// The held-out evaluation text of bench/convert_results.py, built from the development sets in
// ../shared/data: text the calibration mix never contains (60 GSM8K solutions, 25 HumanEval
// programs, 20 MMLU dev files), so that quality is measured on tokens no allocation saw.
#pragma once

#include <filesystem>
#include <string>

namespace optiq::eval {

// The text, byte for byte as bench/convert_results.py's held_out_text() writes it. Throws
// InputError naming the first data file that is missing or malformed.
std::string held_out_text(const std::filesystem::path& shared_dir);

// Where ../shared is for a build of this source tree (the default data folder).
std::filesystem::path default_shared_dir();

}  // namespace optiq::eval
