#pragma once
// Stop-string matching for streaming generation, on decoded text (never on token ids, since a stop
// string can span tokens and a token can hold part of a multi-byte character).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace metamath::model {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends newly decoded text. Returns true when a stop string is now complete; the text before
  // it is then final (text()) and generation should end.
  bool append(std::string_view piece);
  bool stopped() const { return stopped_; }
  // Text so far: everything before the stop string once stopped.
  const std::string& text() const { return text_; }
  // The stop string that matched (empty when none).
  const std::string& matched() const { return matched_; }
  // How many bytes of text() may be streamed out now: text that can no longer become part of a
  // stop string and does not end inside a UTF-8 character.
  std::size_t safe_length() const;

 private:
  std::vector<std::string> stops_;
  std::string text_, matched_;
  std::size_t scanned_ = 0;  // text_ before this offset cannot start a match any more
  std::size_t longest_ = 0;
  bool stopped_ = false;
};

}  // namespace metamath::model
