#pragma once
// Small text helpers shared by the renderers and tables.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace heygem::cli::render {

std::string format_duration(double seconds);    // "0:07", "12:03", "1:02:03"; "-" when unknown
std::string format_bytes(std::uint64_t bytes);  // "812 B", "1.5 MiB"
std::string format_fixed(double value, int decimals);
std::string percent(std::int64_t done, std::int64_t total);  // "45%", "" when total is 0
// A bar of `width` cells: "[=========>          ]".
std::string progress_bar(std::int64_t done, std::int64_t total, int width);

// Daemon-supplied text made safe for a terminal: control characters (C0, DEL, C1: ESC sequences,
// CR, ...) become visible escapes such as "\x1b", so no name or message can move the cursor, set
// the title or the clipboard, or forge a line. Tabs stay; newlines stay when `multi_line`.
std::string printable(std::string_view text, bool multi_line = false);

// Left-aligned columns, two spaces apart; the first row is the header. Cells go through printable().
std::string format_table(const std::vector<std::vector<std::string>>& rows);

}  // namespace heygem::cli::render
