#include "cli/render/format.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace heygem::cli::render {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "-";
  const auto total = static_cast<long long>(std::llround(seconds));
  const long long hours = total / 3600, minutes = (total / 60) % 60, secs = total % 60;
  char text[48];
  if (hours > 0)
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", hours, minutes, secs);
  else
    std::snprintf(text, sizeof text, "%lld:%02lld", minutes, secs);
  return text;
}

std::string format_bytes(std::uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return format_fixed(value, 1) + " " + kUnits[unit];
}

std::string format_fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, std::isfinite(value) ? value : 0.0);
  return text;
}

std::string percent(std::int64_t done, std::int64_t total) {
  if (total <= 0) return "";
  const auto clamped = std::clamp<std::int64_t>(done, 0, total);
  return std::to_string(clamped * 100 / total) + "%";
}

std::string progress_bar(std::int64_t done, std::int64_t total, int width) {
  const int inner = std::max(width - 2, 1);
  int filled = 0;
  if (total > 0) filled = static_cast<int>(std::clamp<std::int64_t>(done, 0, total) * inner / total);
  std::string bar = "[";
  for (int i = 0; i < inner; ++i) {
    if (i < filled) bar += '=';
    else if (i == filled && total > 0 && done < total) bar += '>';
    else bar += ' ';
  }
  return bar + "]";
}

std::string printable(std::string_view text, bool multi_line) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    const bool c1 = byte == 0xC2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80 &&
                    static_cast<unsigned char>(text[i + 1]) <= 0x9F;
    if (c1) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned char>(text[++i]));
      out += escaped;
    } else if ((byte < 0x20 && byte != '\t' && !(multi_line && byte == '\n')) || byte == 0x7F) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += static_cast<char>(byte);
    }
  }
  return out;
}

std::string format_table(const std::vector<std::vector<std::string>>& input) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& row : input) {
    rows.emplace_back();
    for (const auto& cell : row) rows.back().push_back(printable(cell));
  }
  std::vector<std::size_t> widths;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (widths.size() <= i) widths.push_back(0);
      widths[i] = std::max(widths[i], row[i].size());
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace heygem::cli::render
