// Lookups over the generated tables of unicode_tables.cpp (see unicode_tables.h).
#include <algorithm>
#include <array>
#include <cctype>
#include <string>

#include "model/unicode_tables.h"

namespace metamath::model::unicode {
namespace {

bool in_ranges(std::span<const Range> r, char32_t cp) {
  auto it = std::upper_bound(r.begin(), r.end(), cp,
                             [](char32_t c, const Range& x) { return c < x.first; });
  return it != r.begin() && cp <= std::prev(it)->last;
}

// Appends [a, b] to sorted ranges, merging with the last one when they touch.
void push_merged(std::vector<Range>& out, char32_t a, char32_t b) {
  if (!out.empty() && a <= out.back().last + 1)
    out.back().last = std::max(out.back().last, b);
  else
    out.push_back({a, b});
}

// The code points whose category is one of `cats`.
std::vector<Range> categories(std::initializer_list<GeneralCategory> cats) {
  const auto runs = general_category_runs();
  std::vector<Range> out;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (std::find(cats.begin(), cats.end(), runs[i].gc) == cats.end()) continue;
    const char32_t last = i + 1 < runs.size() ? runs[i + 1].first - 1 : 0x10FFFF;
    push_merged(out, runs[i].first, last);
  }
  return out;
}

// "Uppercase_Letter" -> "uppercaseletter": Oniguruma ignores case, spaces, '_' and '-'.
std::string loose(std::string_view name) {
  std::string s;
  for (char c : name)
    if (c != '_' && c != ' ' && c != '-') s += static_cast<char>(std::tolower(c));
  return s;
}

struct Category {
  const char* short_name;
  const char* long_name;
  GeneralCategory gc;
};
constexpr std::array<Category, 30> kCategories = {{
    {"cn", "unassigned", Cn},
    {"lu", "uppercaseletter", Lu},
    {"ll", "lowercaseletter", Ll},
    {"lt", "titlecaseletter", Lt},
    {"lm", "modifierletter", Lm},
    {"lo", "otherletter", Lo},
    {"mn", "nonspacingmark", Mn},
    {"mc", "spacingmark", Mc},
    {"me", "enclosingmark", Me},
    {"nd", "decimalnumber", Nd},
    {"nl", "letternumber", Nl},
    {"no", "othernumber", No},
    {"pc", "connectorpunctuation", Pc},
    {"pd", "dashpunctuation", Pd},
    {"ps", "openpunctuation", Ps},
    {"pe", "closepunctuation", Pe},
    {"pi", "initialpunctuation", Pi},
    {"pf", "finalpunctuation", Pf},
    {"po", "otherpunctuation", Po},
    {"sm", "mathsymbol", Sm},
    {"sc", "currencysymbol", Sc},
    {"sk", "modifiersymbol", Sk},
    {"so", "othersymbol", So},
    {"zs", "spaceseparator", Zs},
    {"zl", "lineseparator", Zl},
    {"zp", "paragraphseparator", Zp},
    {"cc", "control", Cc},
    {"cf", "format", Cf},
    {"cs", "surrogate", Cs},
    {"co", "privateuse", Co},
}};

}  // namespace

GeneralCategory general_category(char32_t cp) {
  const auto runs = general_category_runs();
  auto it = std::upper_bound(runs.begin(), runs.end(), cp,
                             [](char32_t c, const GcRun& r) { return c < r.first; });
  return std::prev(it)->gc;
}

bool is_white_space(char32_t cp) { return in_ranges(white_space_ranges(), cp); }

bool is_numeric(char32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  return in_ranges(numeric_ranges(), cp);
}

bool is_nfc_inert(char32_t cp) { return cp >= 0x300 && in_ranges(nfc_inert_ranges(), cp); }

std::vector<Range> complement(std::span<const Range> r) {
  std::vector<Range> out;
  char32_t next = 0;
  for (const Range& x : r) {
    if (x.first > next) out.push_back({next, x.first - 1});
    next = x.last + 1;
  }
  if (next <= 0x10FFFF) out.push_back({next, 0x10FFFF});
  return out;
}

std::optional<std::vector<Range>> property_ranges(std::string_view name) {
  const std::string n = loose(name);
  for (const auto& c : kCategories)
    if (n == c.short_name || n == c.long_name) return categories({c.gc});
  if (n == "l" || n == "letter") return categories({Lu, Ll, Lt, Lm, Lo});
  if (n == "lc" || n == "l&" || n == "casedletter") return categories({Lu, Ll, Lt});
  if (n == "m" || n == "mark" || n == "combiningmark") return categories({Mn, Mc, Me});
  if (n == "n" || n == "number") return categories({Nd, Nl, No});
  if (n == "p" || n == "punctuation") return categories({Pc, Pd, Ps, Pe, Pi, Pf, Po});
  if (n == "s" || n == "symbol") return categories({Sm, Sc, Sk, So});
  if (n == "z" || n == "separator") return categories({Zs, Zl, Zp});
  if (n == "c" || n == "other") return categories({Cn, Cc, Cf, Cs, Co});
  if (n == "whitespace" || n == "space")
    return std::vector<Range>(white_space_ranges().begin(), white_space_ranges().end());
  if (n == "word") return std::vector<Range>(word_ranges().begin(), word_ranges().end());
  if (n == "any") return std::vector<Range>{{0, 0x10FFFF}};
  if (n == "assigned") return complement(categories({Cn}));
  return std::nullopt;
}

}  // namespace metamath::model::unicode
