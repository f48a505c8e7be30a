#pragma once
// A scripted LLM for bootstrap tests: it answers the project's prompts about a known set of seed
// problems from their gold solutions, correctly or deliberately wrongly according to a fixed rule,
// so a test can compute exactly which records the pipeline must keep.
//
//   solve       correct unless wrong(question, seed, choice); correct text is the gold solution
//               ending in "The answer is: gold" (choice 1: ending in "#### gold" / the \boxed{}
//               only, to exercise normalisation); wrong text ends in a different number.
//   rephrase    choice 0: "Put differently: Q", choice 1: "In other words, Q", later choices
//               repeat choice 0 (duplicates the pipeline must drop).
//   sv_rewrite  statement(final sentence, A): "The answer to: {final sentence without ?} is {A}."
//               (keeps the unknown, never states the masked value: always accepted).
//   backward    "The value of x is v." with the masked value v, or a wrong value.
#include <algorithm>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "bootstrap/bootstrap.h"
#include "bootstrap/mask.h"
#include "bootstrap/metamathqa.h"
#include "core/text.h"
#include "data/problem.h"

namespace metamath::bootstrap::testing {

inline uint64_t hash_str(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// The script's rule: about one solve in three is wrong.
inline bool wrong(std::string_view question, uint64_t seed, int choice) {
  return hash_str(std::string(question) + "|" + std::to_string(seed) + "|" +
                  std::to_string(choice)) %
             3 ==
         0;
}

// The scripted SV rewrite of a final sentence.
inline std::string statement(std::string_view final_sentence, std::string_view answer) {
  std::string f(text::trim(final_sentence));
  while (!f.empty() && (f.back() == '?' || f.back() == '.')) f.pop_back();
  return "The answer to: " + f + " is " + std::string(answer) + ".";
}

// The SV query the pipeline builds from the scripted rewrite.
inline std::string scripted_sv_query(const std::string& masked_question, const std::string& answer,
                                     answer::Style st) {
  SvParts parts = sv_split(masked_question, st);
  return sv_query(parts, text::collapse_spaces(statement(parts.final, answer)), st);
}

inline const char* kRephraseA = "Put differently: ";
inline const char* kRephraseB = "In other words, ";

class ScriptedWorld {
 public:
  ScriptedWorld(std::vector<data::Problem> problems, Prompts prompts)
      : problems_(std::move(problems)), prompts_(std::move(prompts)) {
    for (std::size_t i = 0; i < problems_.size(); ++i) {
      const auto& p = problems_[i];
      by_question_[text::collapse_spaces(p.question)] = i;
      auto st = p.style == "math" ? answer::Style::Math : answer::Style::Gsm8k;
      for (const auto& m : mask_numbers(p.question, st)) {
        masked_[text::collapse_spaces(m.question)] = m.value;
        masked_[text::collapse_spaces(scripted_sv_query(m.question, p.answer, st))] = m.value;
      }
    }
  }

  // The completion for one choice of a raw prompt.
  std::string respond(const std::string& prompt, uint64_t seed, int choice) const {
    std::string q;
    if (match(prompt, prompts_.rephrase, q)) {
      std::string orig = q;
      return (choice == 1 ? kRephraseB : kRephraseA) + orig;
    }
    if (match_rewrite(prompt, q)) return q;
    for (const std::string* t : {&prompts_.backward_gsm8k, &prompts_.backward_math})
      if (match(prompt, *t, q)) return backward(q, seed, choice);
    for (const std::string* t : {&prompts_.solve_gsm8k, &prompts_.solve_math})
      if (match(prompt, *t, q)) return solve(q, seed, choice);
    throw std::runtime_error("scripted world: unknown prompt: " + prompt.substr(0, 80));
  }

  // The seed problem a (possibly rephrased) question is about.
  const data::Problem* find(std::string q) const {
    for (const char* pre : {kRephraseA, kRephraseB})
      if (text::starts_with(q, pre)) q = q.substr(std::string(pre).size());
    auto it = by_question_.find(text::collapse_spaces(q));
    return it == by_question_.end() ? nullptr : &problems_[it->second];
  }

  static std::string gold_text(const data::Problem& p) {
    if (p.style == "math") return p.solution;
    std::string s = p.solution;
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {  // drop <<a*b=c>> calculator notes
      if (s.compare(i, 2, "<<") == 0) {
        std::size_t e = s.find(">>", i);
        if (e != std::string::npos) {
          i = e + 1;
          continue;
        }
      }
      out.push_back(s[i]);
    }
    return std::string(text::trim(out.substr(0, out.rfind("####"))));
  }

 private:
  static bool match(const std::string& prompt, const std::string& tmpl, std::string& q) {
    std::size_t at = tmpl.find("{question}");
    std::string pre = tmpl.substr(0, at), post = tmpl.substr(at + 10);
    if (prompt.size() < pre.size() + post.size() || prompt.compare(0, pre.size(), pre) != 0 ||
        prompt.compare(prompt.size() - post.size(), post.size(), post) != 0)
      return false;
    q = prompt.substr(pre.size(), prompt.size() - pre.size() - post.size());
    return true;
  }

  bool match_rewrite(const std::string& prompt, std::string& out) const {
    const std::string& t = prompts_.sv_rewrite;
    std::size_t at = t.find("{question}");
    std::string pre = t.substr(0, at);
    if (prompt.compare(0, pre.size(), pre) != 0) return false;
    std::string rest = prompt.substr(pre.size());
    std::size_t a = rest.rfind("\nAnswer: ");
    std::size_t s = rest.rfind("\nStatement:");
    std::string final_sentence = rest.substr(0, a), ans = rest.substr(a + 9, s - a - 9);
    out = " " + statement(final_sentence, ans);
    return true;
  }

  std::string solve(const std::string& q, uint64_t seed, int choice) const {
    const data::Problem* p = find(q);
    if (!p) throw std::runtime_error("scripted world: unknown question: " + q);
    bool bad = wrong(q, seed, choice);
    std::string ans = bad ? p->answer + "7" : p->answer;
    if (p->style == "math") {
      if (bad) return " " + p->solution + "\nThe answer is: " + p->answer + "+1";
      if (choice == 1) return " " + p->solution;  // \boxed{} only
      return " " + p->solution + "\nThe answer is: " + ans +
             "\n\nQuestion: (a continued transcript)";
    }
    if (choice == 1 && !bad) return " " + gold_text(*p) + "\n#### " + ans;
    return " " + gold_text(*p) + "\nThe answer is: " + ans;
  }

  std::string backward(const std::string& q, uint64_t seed, int choice) const {
    // FOBAR: the masked question before the newline; SV: the whole query.
    const std::string fobar = "\nIf we know the answer to the above question is ";
    std::size_t f = q.find(fobar);
    std::string masked = f != std::string::npos ? q.substr(0, f) : q;
    auto it = masked_.find(text::collapse_spaces(masked));
    if (it == masked_.end()) throw std::runtime_error("scripted world: unknown masked " + masked);
    bool bad = wrong(q, seed, choice);
    std::string v = bad ? it->second + "1" : it->second;
    return " We set up an equation in the unknown and solve it.\nThe value of x is " + v + ".";
  }

  std::vector<data::Problem> problems_;
  Prompts prompts_;
  std::map<std::string, std::size_t> by_question_;
  std::map<std::string, std::string> masked_;
};

// What the pipeline must keep, computed from the script's rule: (type, query, gold) per record.
struct Expected {
  std::string type, query, gold;
  bool operator<(const Expected& o) const {
    return std::tie(type, query, gold) < std::tie(o.type, o.query, o.gold);
  }
  bool operator==(const Expected& o) const {
    return std::tie(type, query, gold) == std::tie(o.type, o.query, o.gold);
  }
};

// Assumes every mask is used (Options::backward_masks at least the number of candidates) and
// rephrasings >= 2 (the script gives two distinct rephrasings).
inline std::vector<Expected> expected_records(const std::vector<data::Problem>& problems,
                                              const Options& o) {
  std::vector<Expected> out;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const auto& p = problems[i];
    bool math = p.style == "math";
    auto st = math ? answer::Style::Math : answer::Style::Gsm8k;
    std::string pre = math ? "MATH_" : "GSM_", x = math ? "X" : "x", pid = std::to_string(i);
    uint64_t s = job_seed(o.seed, "A/" + pid);
    for (int c = 0; c < o.ansaug_samples; ++c)
      if (!wrong(p.question, s, c)) out.push_back({pre + "AnsAug", p.question, p.answer});
    for (int c = 0; c < 2; ++c) {
      std::string q = text::collapse_spaces((c == 1 ? kRephraseB : kRephraseA) + p.question);
      for (int a = 0; a < o.rephrase_attempts; ++a) {
        uint64_t sa =
            job_seed(o.seed, "RS/" + pid + "/" + std::to_string(c) + "/" + std::to_string(a));
        if (!wrong(q, sa, 0)) {
          out.push_back({pre + "Rephrased", q, p.answer});
          break;
        }
      }
    }
    auto masks = mask_numbers(p.question, st);
    for (std::size_t mi = 0; mi < masks.size(); ++mi) {
      const auto& m = masks[mi];
      std::string sv = scripted_sv_query(m.question, p.answer, st);
      std::string fb = std::string(text::trim(m.question)) +
                       "\nIf we know the answer to the above question is " + p.answer +
                       ", what is the value of unknown variable " + x + "?";
      uint64_t ss = job_seed(o.seed, "SS/" + pid + "/" + std::to_string(mi));
      uint64_t sf = job_seed(o.seed, "F/" + pid + "/" + std::to_string(mi));
      for (int c = 0; c < o.backward_samples; ++c) {
        if (!wrong(sv, ss, c)) out.push_back({pre + "SV", sv, m.value});
        if (!wrong(fb, sf, c)) out.push_back({pre + "FOBAR", fb, m.value});
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace metamath::bootstrap::testing
