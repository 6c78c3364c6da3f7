// kv-sensitivity.svg: two panels (keys above, values below), the layer on the x axis, the KL
// of every candidate on a log y axis as one coloured line each, and the chosen type of each
// slot marked with a black ring. A KL of 0 (f32) has no place on a log axis and is drawn on
// the bottom edge.
#pragma once

#include <string>

#include "kv/kv_allocation.h"

namespace optiq::kv {

std::string kv_sensitivity_svg(const KVPlan& plan, const std::string& title);

}  // namespace optiq::kv
