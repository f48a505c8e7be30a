#include "bootstrap/symbolic.h"

#include <mutex>

#include "bootstrap/symbolic_backward.h"
#include "bootstrap/symbolic_graph.h"
#include "bootstrap/symbolic_solution.h"

namespace metamath::bootstrap {

std::size_t SymbolicResult::verified() const {
  std::size_t n = 0;
  for (const auto& m : masks)
    if (m.cause.empty()) ++n;
  return n;
}

std::size_t SymbolicResult::determined() const {
  std::size_t n = 0;
  for (const auto& m : masks)
    if (m.determined) ++n;
  return n;
}

SymbolicResult symbolic_backward(std::string_view question, std::string_view solution,
                                 std::string_view answer, const SymbolicOptions& opts) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  using namespace symbolic;
  SymbolicResult r;
  Graph g = parse_graph(question, solution, answer);
  r.failure = g.failure;
  r.unlinked = g.unlinked;
  r.steps = g.steps.size();
  const std::string A(answer);
  for (const MaskOutcome& o : backward_masks(g)) {
    const QuestionNumber& q = g.numbers[o.number];
    SymbolicMask m;
    m.written = q.written;
    m.offset = q.offset;
    m.x = q.x_plain;
    m.cause = o.cause;
    m.detail = o.detail;
    m.determined = o.determined;
    m.readings = o.readings;
    m.masked_question = o.masked_question;
    if (!o.f.is_zero() && o.f.has(unknown())) m.equation = format_expr(o.f) + " = " + A;
    if (o.verified()) m.kind = equation_kind_name(o.kind);
    const std::size_t index = r.masks.size();
    if (o.verified()) {
      auto add = [&](BackwardType t, const std::string& query) {
        Written w = write_solution(g, o, t, A);
        if (!w.ok) {
          m.no_solution = w.reason;
          return false;
        }
        SymbolicRecord rec;
        rec.type = t == BackwardType::FOBAR ? "FOBAR" : "SV";
        rec.query = query;
        rec.response = w.text;
        rec.x = q.x_plain;
        rec.masked = q.written;
        rec.kind = m.kind;
        rec.mask = index;
        r.records.push_back(std::move(rec));
        return true;
      };
      if (opts.fobar) m.fobar = add(BackwardType::FOBAR, fobar_question(o.masked_question, A));
      if (opts.sv) {
        auto sv = sv_question(o.masked_question, A);
        if (!sv) {
          m.no_sv = "the last sentence is not a supported question form";
        } else {
          m.sv = add(BackwardType::SV, *sv);
          if (!m.sv) m.no_sv = "no solution written";
        }
      }
    }
    r.masks.push_back(std::move(m));
  }
  return r;
}

}  // namespace metamath::bootstrap
