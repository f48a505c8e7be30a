// Unicode NFC normalization (UAX #15) by libutf8proc (Debian's libutf8proc-dev), and the
// Unicode 9.0 NFC of Hugging Face tokenizers on top of it.
#include <utf8proc.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_internal.h"
#include "model/unicode_tables.h"

namespace metamath::model {

std::string unicode_nfc(std::string_view s) {
  // Fast path: text made only of code points below U+0300 is already in NFC (no such character
  // decomposes into something that composes differently, and none combines with a neighbour).
  bool simple = true;
  for (unsigned char c : s) {
    if (c >= 0xCC) {  // a lead byte of U+0300 or above
      simple = false;
      break;
    }
  }
  if (simple) return std::string(s);

  // Validate with the tokenizers' own strict decoder first, so invalid input fails with the byte
  // offset whatever utf8proc would make of it.
  for (std::size_t i = 0; i < s.size();) {
    int32_t cp;
    const std::size_t len = utf8::decode(s, i, cp);
    if (cp < 0) fail("NFC normalization: invalid UTF-8 at byte {}", i);
    i += len;
  }
  // Not UTF8PROC_NULLTERM: the length is given, so U+0000 is an ordinary character.
  utf8proc_uint8_t* dst = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(
      reinterpret_cast<const utf8proc_uint8_t*>(s.data()), static_cast<utf8proc_ssize_t>(s.size()),
      &dst, static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owned(dst, &std::free);
  if (n < 0) fail("NFC normalization: {}", utf8proc_errmsg(n));
  return std::string(reinterpret_cast<const char*>(dst), static_cast<std::size_t>(n));
}

std::string tokenizers_nfc(std::string_view s) {
  // The characters tokenizers' NFC does not know are starters that neither reorder nor compose:
  // they cut the text into parts normalized one by one. (utf8proc is Unicode 15.0, so what is
  // newer, Unicode 16.0's compositions, is unknown to both.)
  std::size_t i = 0;
  while (i < s.size() && static_cast<unsigned char>(s[i]) < 0xCC) ++i;
  if (i == s.size()) return std::string(s);  // below U+0300 only: already NFC
  std::string out;
  std::size_t part = 0;
  while (i < s.size()) {
    if (static_cast<unsigned char>(s[i]) < 0xCC) {  // below U+0300: never inert
      ++i;
      continue;
    }
    int32_t cp;
    const std::size_t len = utf8::decode(s, i, cp);
    if (cp >= 0 && unicode::is_nfc_inert(static_cast<char32_t>(cp))) {
      out += unicode_nfc(s.substr(part, i - part));
      out.append(s.substr(i, len));
      part = i + len;
    }
    i += len;
  }
  if (part == 0) return unicode_nfc(s);
  out += unicode_nfc(s.substr(part));
  return out;
}

}  // namespace metamath::model
