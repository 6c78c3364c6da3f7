// Comma-separated option values ("4,8", "Q3_K_M,Q4_K_M", "q8_0,tq3"), parsed one way for every
// command so that a stray comma is the same clear error everywhere.
#pragma once

#include <string>
#include <vector>

namespace optiq {

// "a,b,c" -> {"a", "b", "c"}. An empty list or an empty item ("a,,b", "a,") is an InputError
// naming `option`.
std::vector<std::string> split_list(const std::string& list, const char* option);

// "4,8" -> {4, 8}. An item that is not a whole number is an InputError naming `option`.
std::vector<int> parse_int_list(const std::string& list, const char* option);
// "4.5,6" -> {4.5, 6}. An item that is not a number is an InputError naming `option`.
std::vector<double> parse_double_list(const std::string& list, const char* option);

}  // namespace optiq
