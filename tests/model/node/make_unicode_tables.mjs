// Generates src/model/unicode_tables.cpp: the Unicode character classes of the Hugging Face
// `tokenizers` library (the Rust crate, through its official npm binding pinned in package.json),
// read off the library itself so that metamath's split regexes see exactly what it sees.
//
//   cd tests/model/node && out=../../../src/model/unicode_tables.cpp &&
//     node make_unicode_tables.mjs > $out && clang-format-14 -i $out
//
// `tokenizers` runs its Split / ByteLevel regexes with Oniguruma (tokenizers 0.23.2 links the onig
// crate 6.5.3, Oniguruma 6.9.10), whose tables are Unicode 16.0 (this script checks that: letters
// new in 16.0 are letters, letters new in 17.0 are not). Its `Digits` pre-tokenizer uses Rust's
// char::is_numeric. For each class the script builds a one-pre-tokenizer Tokenizer whose Split
// regex removes the class, runs it over every code point, and keeps the ones that were removed:
//   * the 29 general categories \p{Lu} ... \p{Co} (surrogates are Cs by definition);
//   * \s (Oniguruma: the White_Space property) and \w (Oniguruma's Word);
//   * Digits: the characters Rust's char::is_numeric accepts (Rust's std is Unicode 17.0);
//   * the characters its NFC normalizer (Unicode 9.0) leaves alone where today's NFC does not.
// It also checks the classes the C++ side derives by union (\p{L} = Lu|Ll|Lt|Lm|Lo, \p{N}, \p{M},
// \p{P}, \p{S}, \p{Z}, \p{C}) and \d = \p{Nd} against the library.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Tokenizer, nfcNormalizer } = require("tokenizers");
const { version: tokenizersVersion } = require("tokenizers/package.json");

const MAX = 0x10ffff;
const isSurrogate = (c) => c >= 0xd800 && c <= 0xdfff;

function tokenizerWith(preTokenizer) {
  const j = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: null,
    decoder: null,
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null,
             end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab: {}, merges: [] },
  };
  return Tokenizer.fromString(JSON.stringify(j)).getPreTokenizer();
}

// Membership (Uint8Array over 0..MAX) of the code points a regex matches, one code point at a time.
function probeRegex(regex) {
  const pre = tokenizerWith({ type: "Split", pattern: { Regex: regex }, behavior: "Removed", invert: false });
  const member = new Uint8Array(MAX + 1);
  const CHUNK = 0x10000;
  for (let lo = 0; lo <= MAX; lo += CHUNK) {
    const cps = [];
    for (let c = lo; c < lo + CHUNK && c <= MAX; ++c) if (!isSurrogate(c)) cps.push(c);
    for (const c of cps) member[c] = 1;
    // What is left after removing the matches is every code point that does not match.
    for (const [piece] of pre.preTokenizeString(String.fromCodePoint(...cps)))
      for (const ch of piece) member[ch.codePointAt(0)] = 0;
  }
  return member;
}

// Rust's char::is_numeric, as the Digits pre-tokenizer uses it: each numeric character becomes a
// piece of its own (individual_digits), every other character stays glued to the "a" around it.
function probeDigits() {
  const pre = tokenizerWith({ type: "Digits", individual_digits: true });
  const member = new Uint8Array(MAX + 1);
  const CHUNK = 0x4000;
  for (let lo = 0; lo <= MAX; lo += CHUNK) {
    let s = "a";
    for (let c = lo; c < lo + CHUNK && c <= MAX; ++c) if (!isSurrogate(c)) s += String.fromCodePoint(c) + "a";
    for (const [piece] of pre.preTokenizeString(s)) {
      const chars = [...piece];
      if (chars.length === 1 && piece !== "a") member[chars[0].codePointAt(0)] = 1;
    }
  }
  return member;
}

function same(a, b) {
  for (let c = 0; c <= MAX; ++c) if (!isSurrogate(c) && a[c] !== b[c]) return c;
  return -1;
}
function union(...sets) {
  const u = new Uint8Array(MAX + 1);
  for (const s of sets) for (let c = 0; c <= MAX; ++c) u[c] |= s[c];
  return u;
}
function ranges(member) {
  const out = [];
  for (let c = 0; c <= MAX; ++c) {
    if (!member[c]) continue;
    let e = c;
    while (e + 1 <= MAX && member[e + 1]) ++e;
    out.push([c, e]);
    c = e;
  }
  return out;
}
function check(cond, what) {
  if (!cond) {
    console.error(`make_unicode_tables: ${what}`);
    process.exit(1);
  }
}
const hex = (c) => "0x" + c.toString(16).toUpperCase().padStart(4, "0");

// The order of enum GeneralCategory in src/model/unicode_tables.h.
const GC = ["Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps",
            "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"];

const gc = new Uint8Array(MAX + 1).fill(255);
const sets = {};
for (let k = 0; k < GC.length; ++k) {
  const name = GC[k];
  if (name === "Cs") continue;
  const m = probeRegex(`\\p{${name}}`);
  sets[name] = m;
  for (let c = 0; c <= MAX; ++c) {
    if (!m[c]) continue;
    check(gc[c] === 255, `${hex(c)} is in both ${GC[gc[c]]} and ${name}`);
    gc[c] = k;
  }
}
for (let c = 0xd800; c <= 0xdfff; ++c) gc[c] = GC.indexOf("Cs");
for (let c = 0; c <= MAX; ++c) check(gc[c] !== 255, `${hex(c)} is in no general category`);

// Unicode version: letters new in 16.0 (Garay U+10D50, Kirat Rai U+16D43, Ol Onal U+1E5D1, Tulu-
// Tigalari U+11380) must be letters; letters new in 17.0 (Sidetic U+10940, Beria Erfe U+16EA0,
// CJK Ext. J U+323B0) must not.
for (const c of [0x10d50, 0x16d43, 0x1e5d1, 0x11380]) check(GC[gc[c]][0] === "L", `${hex(c)}: not Unicode 16.0`);
for (const c of [0x10940, 0x16ea0, 0x323b0]) check(GC[gc[c]] === "Cn", `${hex(c)}: newer than Unicode 16.0`);

const byMajor = (p) => union(...GC.filter((g) => g[0] === p && g !== "Cs").map((g) => sets[g]));
for (const p of ["L", "M", "N", "P", "S", "Z", "C"]) {
  const bad = same(probeRegex(`\\p{${p}}`), byMajor(p));
  check(bad < 0, `\\p{${p}} differs from the union of its categories at ${hex(bad)}`);
}
{
  const bad = same(probeRegex("\\d"), sets.Nd);
  check(bad < 0, `\\d differs from \\p{Nd} at ${hex(bad)}`);
}
const whiteSpace = probeRegex("\\s");
const word = probeRegex("\\w");
const numeric = probeDigits();
// Rust's std has its own, newer Unicode tables: char::is_numeric of tokenizers 0.23.2 is \p{N} of
// Unicode 17.0 (Tolong Siki digits U+11DE0.. are numeric), checked against node's ICU when that is
// Unicode 17.0 too.
check(numeric[0x11de0] === 1 && numeric[0x1e5f1] === 1, "Digits: Rust's char::is_numeric is not Unicode 17.0");
if (process.versions.unicode === "17.0") {
  const nodeN = new Uint8Array(MAX + 1);
  for (let c = 0; c <= MAX; ++c) if (!isSurrogate(c) && /\p{N}/u.test(String.fromCodePoint(c))) nodeN[c] = 1;
  const bad = same(numeric, nodeN);
  check(bad < 0, `Digits (Rust char::is_numeric) differs from node's Unicode 17.0 \\p{N} at ${hex(bad)}`);
} else {
  console.error(`make_unicode_tables: node has Unicode ${process.versions.unicode}: Digits not cross-checked`);
}

// The names property_ranges() (src/model/unicode_tables.h) accepts besides the categories.
for (const [alias, expect] of [
  ["Letter", byMajor("L")], ["Uppercase_Letter", sets.Lu], ["Decimal_Number", sets.Nd],
  ["LC", union(sets.Lu, sets.Ll, sets.Lt)], ["White_Space", whiteSpace], ["Space", whiteSpace],
  ["Word", word], ["Assigned", sets.Cn.map((x) => 1 - x)], ["Any", new Uint8Array(MAX + 1).fill(1)],
]) {
  const bad = same(probeRegex(`\\p{${alias}}`), expect);
  check(bad < 0, `\\p{${alias}} is not what unicode_tables.h says at ${hex(bad)}`);
}

// NFC: tokenizers normalizes with the unicode-normalization-alignments crate, whose tables are
// Unicode 9.0: a character added later is, for it, a starter that neither decomposes nor composes
// (combining class 0). The characters where that makes its NFC differ from today's (node's ICU) are
// found with four probes each (alone, after "x" + U+0301 (ccc 230), between "x" and U+0334 (ccc 1),
// and decomposed); metamath's NFC (utf8proc, Unicode 15.0) treats them as such starters too.
const nfc = nfcNormalizer();
const nfcInert = new Uint8Array(MAX + 1);
for (let c = 0; c <= MAX; ++c) {
  if (isSurrogate(c)) continue;
  const ch = String.fromCodePoint(c);
  for (const t of [ch, "x\u0301" + ch, "x" + ch + "\u0334", ch.normalize("NFD")])
    if (nfc.normalizeString(t) !== t.normalize("NFC")) nfcInert[c] = 1;
}
// U+0D3B (Unicode 10.0) is unknown to it, U+1DFB (9.0) is known.
check(nfcInert[0x0d3b] === 1 && nfcInert[0x1dfb] === 0, "NFC: tokenizers' tables are not Unicode 9.0");

// Runs of equal general category.
const runs = [];
for (let c = 0; c <= MAX; ++c) if (c === 0 || gc[c] !== gc[c - 1]) runs.push([c, gc[c]]);

const lines = [];
const emit = (s) => lines.push(s);
const table = (type, name, items, perLine) => {
  emit(`constexpr ${type} ${name}[] = {`);
  for (let i = 0; i < items.length; i += perLine) emit("    " + items.slice(i, i + perLine).join(", ") + ",");
  emit("};");
};
emit("// GENERATED by tests/model/node/make_unicode_tables.mjs from the Hugging Face `tokenizers`");
emit(`// library ${tokenizersVersion} (Rust, npm binding): general categories, \\s and \\w of Unicode 16.0`);
emit("// (its regex engine, Oniguruma), Digits of Unicode 17.0 (Rust's char::is_numeric), the characters");
emit("// its NFC (Unicode 9.0) does not know. Do not edit.");
emit('#include "model/unicode_tables.h"');
emit("");
emit("namespace metamath::model::unicode {");
emit("namespace {");
emit("");
table("GcRun", "kGeneralCategoryRuns", runs.map(([c, k]) => `{${hex(c)}, ${GC[k]}}`), 6);
const rangeItems = (m) => ranges(m).map(([a, b]) => `{${hex(a)}, ${hex(b)}}`);
emit("");
table("Range", "kWhiteSpace", rangeItems(whiteSpace), 5);
emit("");
table("Range", "kWord", rangeItems(word), 5);
emit("");
table("Range", "kNumeric", rangeItems(numeric), 5);
emit("");
table("Range", "kNfcInert", rangeItems(nfcInert), 5);
emit("");
emit("}  // namespace");
emit("");
emit("std::span<const GcRun> general_category_runs() { return kGeneralCategoryRuns; }");
emit("std::span<const Range> white_space_ranges() { return kWhiteSpace; }");
emit("std::span<const Range> word_ranges() { return kWord; }");
emit("std::span<const Range> numeric_ranges() { return kNumeric; }");
emit("std::span<const Range> nfc_inert_ranges() { return kNfcInert; }");
emit("");
emit("}  // namespace metamath::model::unicode");
process.stdout.write(lines.join("\n") + "\n");
console.error(
  `make_unicode_tables: tokenizers ${tokenizersVersion}: ${runs.length} category runs, ` +
    `${ranges(whiteSpace).length} White_Space ranges, ${ranges(word).length} word ranges, ` +
    `${ranges(numeric).length} numeric ranges, ${ranges(nfcInert).length} NFC-inert ranges`,
);
