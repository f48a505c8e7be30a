#pragma once
// The computation graph of a GSM8K solution (issue 18, item 1).
//
// GSM8K's gold solutions annotate every calculator step as `<<expression=result>>`. parse_graph
// reads every annotation into an expression tree over exact rationals (GiNaC numerics: digits,
// decimals, + - * / and parentheses), checks that it evaluates exactly to its stated result, and
// links every number the expression uses (a "literal") to the places it can come from:
//
//   - a number of the question (question_numbers): digits ("48", "$1,200", "$400 000", "2.5",
//     ".5", "1/2"), percentages ("150%" may be used as 150, 1.5, and its complements 1 - 1.5,
//     100 - 150 ...), cents ("50 cents" as 50 or 0.5), number words ("five", "twenty-five",
//     "five hundred"), words that stand for a number ("half" as 2 or 1/2, "twice"/"double" 2,
//     "triple" 3, "dozen" 12, "quarter" 4 or 1/4, "third" 3 or 1/3, and as fractions only, after
//     "a", a number word or a hyphen, "fourth" ... "tenth": "a fifth" 5 or 1/5), and a count of
//     a unit in the next smaller unit ("1 hour" also 60, "4 dozen" 48, "2 weeks" 14);
//   - an earlier step's result (or that result / 100: "100-40=60" then ".6");
//   - a constant: 1 added ("3 + 1": one more left implicit), subtracted ("7 - 1"), 1 less a
//     non-integer ("1 - 0.4"), or as a factor, divisor or numerator; 2 anywhere (two sides, a
//     round trip, an average); 100 or 1/100 when the problem speaks of percent; unit factors
//     named by a word of the literal's line (60 for hour/minute, 24 day, 7 and 52 week, 12
//     month/year/foot, 365 year, the days of a named month, ...), or of the whole problem when
//     the literal has no other source ("32 x (30/60)" for 32 MPH).
//
// A literal can have several candidate sources with the same value. They are all kept: which one
// is meant only matters when a number is masked, and symbolic_backward.h then weighs the
// readings of the links (which source each such literal stands for). A literal with no candidate is
// unlinked; a graph links fully when every literal of the steps the final answer depends on is
// linked.
#include <ginac/ginac.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace metamath::bootstrap::symbolic {

// The unknown's symbol, shared by every expression of this module.
const GiNaC::symbol& unknown();
// The placeholder for a question number's own value inside its forms.
const GiNaC::symbol& own_value();

struct QuestionNumber {
  enum class Kind { Digits, Percent, Cents, Fraction, Word };
  Kind kind = Kind::Digits;
  std::size_t offset = 0, length = 0;  // the span that a mask replaces
  std::string written;                 // that span's text ("1,200", "five", "half")
  GiNaC::numeric value;                // the number the span stands for (half: 2)
  // The values a solution may use for it, as expressions in own_value() (= value): u, u/100,
  // 1 - u/100, 1/u ...
  std::vector<GiNaC::ex> forms;
  // Masking: whether the span may become the unknown, the text it becomes and x's value there.
  bool maskable = false;
  std::string mask_text;   // "x", or "x%" for "half" (half as x% with x = 50)
  GiNaC::numeric x_value;  // the masked value (half: 50)
  std::string x_plain;     // x_value written as a plain answer ("1200", "2.5", "1/2")
  // forms written in terms of the unknown when masked (u replaced by the unknown's relation).
  std::vector<GiNaC::ex> masked_forms;
};

// Every number of a question, in order of appearance.
std::vector<QuestionNumber> question_numbers(std::string_view question);

// One annotated step's expression tree. Node 0..n-1; the root is `root`.
struct Node {
  enum class Op { Lit, Add, Sub, Mul, Div, Neg };
  Op op = Op::Lit;
  int a = -1, b = -1;    // operands
  GiNaC::numeric value;  // the node's exact value
  std::string text;      // Lit: the literal as written in the annotation ("1/2" when joined)
  int literal = -1;      // Lit: index into Graph::literals
  bool parens = false;   // written inside parentheses
};

struct Source {
  enum class Kind { Question, Step, Constant };
  Kind kind = Kind::Constant;
  int index = -1;  // question number or step
  // Question: index into forms; Step: 0 = result, 1 = result / 100; Constant: 1 for the generic
  // constants 1 and 2, 0 for the others.
  int form = 0;
  GiNaC::numeric value;  // Constant: the value
};

struct Literal {
  int step = -1, node = -1;
  GiNaC::numeric value;
  std::vector<Source> sources;  // empty: unlinked
  // Per source: the content words its place shares with the literal's line (a question number:
  // the words around it; a step: the words of its line; a constant: 0). See parse_graph.
  std::vector<int> context;
  // Several question numbers or steps had this value and the words of the literal's line picked
  // one (the others were dropped): see parse_graph.
  bool by_context = false;
};

struct Step {
  std::string expression;   // the annotation's expression text
  std::string result_text;  // its stated result ("24")
  GiNaC::numeric result;
  std::vector<Node> nodes;
  int root = -1;
  // The annotation's span "<<...>>" in the solution; for a text step, the span of "expression =
  // result" as written.
  std::size_t begin = 0, end = 0;
  std::size_t line = 0;  // index of its line in the solution
  // A computation written in the text without an annotation ("$864 + $2,592 = $3,456", "200
  // minus 174 equals 26", "2+2(16)=34", "16+16 = <<32=32>>32" where the annotation only states
  // the result), read when its numbers (unit words between them dropped) evaluate exactly to
  // the number after '=' (or "equals").
  bool text = false;
};

struct Graph {
  std::string question, solution;
  GiNaC::numeric answer;
  std::vector<QuestionNumber> numbers;
  std::vector<Step> steps;
  std::vector<Literal> literals;
  // The constants a number may stand for here (1, the unit factors, 100 and 1/100 with percent).
  std::vector<GiNaC::numeric> constants;
  int answer_step = -1;   // the last step whose result is the final answer; -1: none
  std::vector<int> cone;  // the steps the answer depends on (ascending); empty if no answer_step
  // Why the graph does not link fully ("" when it does): the first cause, in the order checked.
  std::string failure;
  // Per literal of the cone that could not be linked: "step 3: 14400".
  std::vector<std::string> unlinked;
  bool linked() const { return failure.empty(); }
};

// Causes (Graph::failure).
inline constexpr const char* kNoAnnotations = "no calculator annotations";
inline constexpr const char* kBadAnnotation = "an annotation does not parse";
inline constexpr const char* kWrongResult = "an annotation's result is not its expression's value";
inline constexpr const char* kNoAnswerStep = "no annotation computes the final answer";
inline constexpr const char* kUnlinked = "a number of the answer's steps could not be linked";

// Parses `answer` ("72", "-5", "2.5", "3/4"; commas allowed) as an exact rational.
bool parse_rational(std::string_view s, GiNaC::numeric& out);

// Builds the graph. Steps are the annotations and the text steps, in order of position.
//
// When several question numbers or steps share a literal's value, the words of its line may
// choose: each candidate scores the content words it shares with that line (a question number: up
// to 3 words before and 4 after it in its sentence; a step: the words of its own line); a best
// score of at least 2, ahead of all others by at least 2, wins and the other question numbers and
// steps are dropped (constants stay: an implicit count, such as the two days of a weekend, reads
// as well; and a question number is not dropped from the last literal that could stand for it).
// When the step holds other literals of the same value only question numbers are chosen between.
// (Matching equal numbers by their order of use was tried and dropped: solutions often use them in
// another order than the question's.)
Graph parse_graph(std::string_view question, std::string_view solution, std::string_view answer);

// A rational as GiNaC writes it: "-3/4", "18".
std::string num_str(const GiNaC::numeric& v);
// A rational as a plain decimal when it terminates ("1.5", "-0.25", "1200"), else "p/q".
std::string plain(const GiNaC::numeric& v);

}  // namespace metamath::bootstrap::symbolic
