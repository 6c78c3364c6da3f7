// Text placed inside the SVG files optiq writes (plot titles, labels, model and type names).
#pragma once

#include <string>
#include <string_view>

namespace optiq {

// `text` with <, >, & and " replaced by their XML entities, safe in element text and in
// double-quoted attributes.
std::string escape_xml(std::string_view text);

}  // namespace optiq
