#pragma once
// MetaMathQA's formats: how the released data (meta-math/MetaMathQA, Yu et al. 2023) writes the
// backward queries and how every kept response ends. Both the LLM path (bootstrap.h) and the
// symbolic builder (symbolic.h) write their records with these functions.
//
//   FOBAR query   "{masked question}\nIf we know the answer to the above question is {A}, what is
//                 the value of unknown variable x?"  (a newline before "If"; `X` for MATH).
//   SV query      MetaMath's two steps: only the masked question's final sentence, with the
//                 original answer, is rewritten by the LLM into a declarative statement
//                 ("Question: {final sentence} ... {A}" -> "{statement}"); everything before it
//                 is kept word for word; " What is the value of unknown variable x?" follows:
//                 "{kept part}{statement} What is the value of unknown variable x?".
//   Response      GSM8K types: "{reasoning}\n#### {A}\nThe answer is: {A}";
//                 MATH types:  "{reasoning}\nThe answer is: {A}"
//                 where A is the verified answer (the masked value for SV and FOBAR).
//
// Inside MATH math mode the unknown is the bare letter in the number's place ("$2^2 \cdot X$"),
// and the question for it is written "unknown variable X" (no dollars); MetaMath's generation
// prompts ask with "$X$" and a "### " before "If we know", but the released records do not.
//
// A statement is rejected (sv_check) when it is empty, still asks a question, drops the unknown
// (the final sentence held it, the statement does not) or states the masked value (it holds that
// number more often than the final sentence and the answer together).
#include <string>
#include <string_view>

#include "answer/extract.h"

namespace metamath::bootstrap {

std::string fobar_query(std::string_view masked_question, std::string_view answer,
                        answer::Style style);

// SV step 1: the masked question split at its final sentence (mask.h final_sentence_start).
struct SvParts {
  std::string kept;   // everything before the final sentence, word for word (may be empty)
  std::string final;  // the final sentence, trimmed: what the LLM rewrites
};
SvParts sv_split(std::string_view masked_question, answer::Style style);

// Rejection causes of sv_check ("" = accepted).
inline constexpr const char* kSvEmpty = "empty statement";
inline constexpr const char* kSvAsks = "still a question";
inline constexpr const char* kSvDropsUnknown = "drops the unknown";
inline constexpr const char* kSvStatesValue = "states the masked value";

// Checks a rewritten statement (already on one line) against the parts, the masked value and the
// original question's answer.
std::string sv_check(const SvParts& parts, std::string_view statement,
                     std::string_view masked_value, std::string_view answer, answer::Style style);

// SV step 2: the query. A statement without final punctuation gets a ".".
std::string sv_query(const SvParts& parts, std::string_view statement, answer::Style style);

// The response ending. `reasoning` is trimmed; for GSM8K a last line "#### ..." it already has
// is replaced.
std::string metamathqa_response(std::string_view reasoning, std::string_view answer,
                                answer::Style style);

}  // namespace metamath::bootstrap
