#pragma once
// The official MetaMath generation prompts as a second prompt set for `metamath bootstrap
// --prompts DIR` (docs/official_prompts.md). Our own templates (prompts/*.txt) stay the default;
// a folder in the official layout makes bootstrap send the requests the official data
// generation scripts send (meta-math/MetaMath, code_for_generating_data/code/main_*.py).
//
// Layout: DIR is the official prompt folder (code_for_generating_data/configs in a checkout of
// the repository), or the checkout or its code_for_generating_data folder. It holds ten plain
// text files, one per request kind and dataset; each is used whole, stripped of surrounding
// whitespace, as the scripts do:
//
//   request kind (OfficialKind)        GSM8K                                  MATH
//   Solve (AnsAug, Rephrased solves)   ansaug_cot_gsm8k.txt                   ansaug_cot_math.txt
//   Rephrase                           rephrase_cot_gsm8k.txt                 rephrase_cot_math.txt
//   SvRewrite (SV statement)           sv_rewrite_question_prompt_gsm8k.txt   ..._math.txt
//   SvSolve (SV backward solve)        sv_cot_gsm8k.txt                       sv_cot_math.txt
//   FobarSolve (FOBAR backward solve)  fobar_cot_gsm8k.txt                    fobar_cot_math.txt
//
// A file is a few-shot transcript: optional instruction lines, then shots, each starting with a
// line "Question: ..." and holding a line that starts with its kind's answer label ("A:",
// "Rephrase the above question:", "Result:"). Backward solve shots ask for the unknown
// ("unknown variable"); statement rewrite shots give the answer in the question ("The answer
// is"). A file that breaks these rules is refused with FILE:LINE and what was expected.
//
// The system message: DIR/system.txt when present (stripped; an empty file sends none), else the
// one the official scripts send, read from the checkout beside the folder
// (../code/utils/parallel_utils.py, its "system" role's content).
//
// A request is the chat messages the scripts send to a chat model: the system message, then one
// user message "{file}\n\nQuestion: {question}{cue}", with
//   Solve, SvSolve, FobarSolve   cue "\nA: Let's think step by step.\n"
//   Rephrase                     cue "\nRephrase the above question: "
//   SvRewrite                    question "{final sentence} The answer is {A}.", cue "\n Result: "
// and no stop strings (the scripts' chat requests send none). A backward question is sent in the
// scripts' form: for MATH the unknown is written "$X$" and FOBAR's sentence starts "### If we
// know ..."; the records keep MetaMathQA's form (metamathqa.h).
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "answer/extract.h"
#include "llm/backend.h"

namespace metamath::bootstrap {

enum class OfficialKind { Solve, Rephrase, SvRewrite, SvSolve, FobarSolve };

struct OfficialPrompts {
  std::filesystem::path dir;                 // the folder the files were read from
  std::string system;                        // the system message ("" = none)
  std::string system_source;                 // the file it was read from
  std::map<std::string, std::string> files;  // file name -> stripped text, all ten
};

// The official prompt folder at or under `dir` (dir, dir/configs or
// dir/code_for_generating_data/configs): the first that holds any of the ten files, else
// nullopt.
std::optional<std::filesystem::path> find_official_prompts(const std::filesystem::path& dir);

// Reads and checks the ten files and the system message; errors name the file (and line) and
// what was expected.
OfficialPrompts load_official_prompts(const std::filesystem::path& dir);

// The file that serves a request kind for a dataset style ("fobar_cot_math.txt").
std::string official_file_name(OfficialKind kind, answer::Style style);
// Every file name, in the table's order.
const std::vector<std::string>& official_file_names();

// The label a reply may repeat before its text ("Rephrase the above question:", "Result:",
// "A:"), to be dropped when the reply is read.
std::string_view official_reply_label(OfficialKind kind);

// The request's messages. `question`: the question to solve or rephrase; for SvRewrite the masked
// question's final sentence (with `answer`, the original answer); for SvSolve and FobarSolve the
// record query (metamathqa.h sv_query / fobar_query), rewritten here to the scripts' form.
std::vector<llm::ChatMessage> official_messages(const OfficialPrompts& p, OfficialKind kind,
                                                answer::Style style, std::string_view question,
                                                std::string_view answer = "");

// A backward record query in the scripts' form (see above); throws when it is not one of ours.
std::string official_backward_question(std::string_view record_query, OfficialKind kind,
                                       answer::Style style);

// The prompt set as stored in a job store, and back; `where` names the store in errors.
nlohmann::json official_prompts_json(const OfficialPrompts& p);
OfficialPrompts official_prompts_from_json(const nlohmann::json& j, const std::string& where);

}  // namespace metamath::bootstrap
