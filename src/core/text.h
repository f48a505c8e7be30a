#pragma once
// UTF-8 text helpers shared by every module.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace metamath::text {

std::string_view trim(std::string_view s);
std::string to_lower(std::string_view s);  // ASCII only
bool starts_with(std::string_view s, std::string_view prefix);
bool ends_with(std::string_view s, std::string_view suffix);
std::vector<std::string> split(std::string_view s, char sep);
std::string replace_all(std::string s, std::string_view from, std::string_view to);
// Collapses runs of ASCII whitespace into one space and trims.
std::string collapse_spaces(std::string_view s);
// Number of runs of non-whitespace characters (ASCII whitespace): the question length that eval
// records and the report buckets by.
std::size_t word_count(std::string_view s);
bool is_valid_utf8(std::string_view s);
// Length of the longest prefix of s that ends on a UTF-8 character boundary.
std::size_t utf8_safe_prefix(std::string_view s);

// Given s[open] == '{', the index of the matching '}' (escaped braces "\{" "\}" are skipped),
// or npos when unbalanced.
std::size_t match_brace(std::string_view s, std::size_t open);

// Content of the last \boxed{...} or \fbox{...} (brace-matched; also "\boxed 5" without braces),
// or nullopt when there is none or it is unbalanced.
std::optional<std::string> last_boxed(std::string_view s);

// GSM8K gold: text after the last "#### " with thousands commas removed and trimmed.
std::optional<std::string> after_hashes(std::string_view s);

}  // namespace metamath::text
