// Symbolic backward questions (issue 18): the graph, the solver, the question templates, and
// generated solutions checked by hand.
#include "bootstrap/symbolic.h"

#include <gtest/gtest.h>

#include <map>

#include "bootstrap/symbolic_backward.h"
#include "bootstrap/symbolic_graph.h"
#include "bootstrap/symbolic_solution.h"

namespace metamath::bootstrap {
namespace {

using namespace symbolic;

const char* kNataliaQ =
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?";
const char* kNataliaA =
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
    "altogether in April and May.\n#### 72";

TEST(Symbolic, QuestionNumbersWrittenForms) {
  auto ns = question_numbers(
      "Tom paid $1,200 for 2.5 tons, a 150% markup, plus 50 cents, twenty-five boxes and half a "
      "dozen eggs at 9:30.");
  std::vector<std::string> written;
  for (const auto& n : ns) written.push_back(n.written);
  EXPECT_EQ(written, (std::vector<std::string>{"1,200", "2.5", "150", "50", "twenty-five", "half",
                                               "dozen", "9", "30"}));
  EXPECT_EQ(plain(ns[0].value), "1200");
  EXPECT_EQ(ns[2].kind, QuestionNumber::Kind::Percent);
  // 150% may be used as 150, 1.5, 1 - 1.5, 100 - 150, 2.5 or 250.
  std::vector<std::string> forms;
  for (const auto& f : ns[2].forms)
    forms.push_back(plain(GiNaC::ex_to<GiNaC::numeric>(f.subs(own_value() == ns[2].value))));
  EXPECT_EQ(forms, (std::vector<std::string>{"150", "1.5", "-0.5", "-50", "2.5", "250"}));
  EXPECT_EQ(ns[3].kind, QuestionNumber::Kind::Cents);
  EXPECT_EQ(plain(ns[4].value), "25");
  EXPECT_TRUE(ns[4].maskable);
  EXPECT_EQ(plain(ns[5].value), "2");  // half: 2 or 1/2
  EXPECT_TRUE(ns[5].maskable);         // "half a dozen": "x% a dozen" (GSM8K_Backward's form)
  EXPECT_EQ(ns[5].mask_text, "x%");
  EXPECT_EQ(plain(ns[6].value), "12");
  EXPECT_FALSE(ns[7].maskable);  // a time
  EXPECT_FALSE(ns[8].maskable);
}

TEST(Symbolic, HalfAsIsMaskedAsPercent) {
  auto ns = question_numbers("She reads half as many pages.");
  ASSERT_EQ(ns.size(), 1u);
  EXPECT_TRUE(ns[0].maskable);
  EXPECT_EQ(ns[0].mask_text, "x%");
  EXPECT_EQ(ns[0].x_plain, "50");
}

TEST(Symbolic, HalfAsANounIsNotMasked) {
  for (const char* q : {"He cut it in half.", "It took an hour and a half to go.",
                        "In the second half of the day, she slept."}) {
    auto ns = question_numbers(q);
    ASSERT_EQ(ns.size(), 1u) << q;
    EXPECT_FALSE(ns[0].maskable) << q;
  }
}

TEST(Symbolic, MoreWrittenForms) {
  // "$400 000": a thousands group after a space; "a fifth": 5 (or 1/5); "the fifth": an
  // ordinal, not a number; "1 hour": also 60 (minutes); "4 dozen": also 48.
  auto ns = question_numbers(
      "A house costs $400 000. A fifth of it is paid on the fifth day, 1 hour after 4 dozen "
      "calls.");
  std::vector<std::string> written;
  for (const auto& n : ns) written.push_back(n.written);
  EXPECT_EQ(written, (std::vector<std::string>{"400 000", "fifth", "1", "4", "dozen"}));
  EXPECT_EQ(plain(ns[0].value), "400000");
  EXPECT_EQ(ns[0].x_plain, "400000");
  EXPECT_EQ(plain(ns[1].value), "5");
  auto values = [](const QuestionNumber& n) {
    std::vector<std::string> out;
    for (const auto& f : n.forms)
      out.push_back(plain(GiNaC::ex_to<GiNaC::numeric>(f.subs(own_value() == n.value))));
    return out;
  };
  EXPECT_EQ(values(ns[1]), (std::vector<std::string>{"5", "0.2"}));
  EXPECT_EQ(values(ns[2]), (std::vector<std::string>{"1", "60"}));
  EXPECT_EQ(values(ns[3]), (std::vector<std::string>{"4", "48"}));
}

TEST(Symbolic, NoMasksWhenTheQuestionUsesX) {
  for (const auto& n : question_numbers("Solve 3 x 4 boxes for 5 dollars."))
    EXPECT_FALSE(n.maskable);
}

TEST(Symbolic, GraphLinksEveryNumber) {
  Graph g = parse_graph(kNataliaQ, kNataliaA, "72");
  ASSERT_TRUE(g.linked()) << g.failure;
  ASSERT_EQ(g.steps.size(), 2u);
  EXPECT_EQ(g.answer_step, 1);
  EXPECT_EQ(g.cone, (std::vector<int>{0, 1}));
  // 48/2: 48 is the question's number; 48+24: 24 is step 1's result.
  const Step& s1 = g.steps[0];
  const Literal& l48 = g.literals[s1.nodes[0].literal];
  ASSERT_EQ(l48.sources.size(), 1u);
  EXPECT_EQ(l48.sources[0].kind, Source::Kind::Question);
  EXPECT_EQ(g.numbers[l48.sources[0].index].written, "48");
  const Literal& l24 = g.literals[g.steps[1].nodes[1].literal];
  ASSERT_EQ(l24.sources.size(), 1u);
  EXPECT_EQ(l24.sources[0].kind, Source::Kind::Step);
  EXPECT_EQ(l24.sources[0].index, 0);
}

TEST(Symbolic, GraphFailuresNameTheCause) {
  EXPECT_EQ(parse_graph("He has 3 cats.", "3*2=<<3*2=7>>7\n#### 7", "7").failure, kWrongResult);
  EXPECT_EQ(parse_graph("He has 3 cats.", "He has six.\n#### 6", "6").failure, kNoAnnotations);
  EXPECT_EQ(parse_graph("He has 3 cats.", "3*2=<<3*2=6>>6\n#### 7", "7").failure, kNoAnswerStep);
  Graph g = parse_graph("He has 3 cats.", "3*17=<<3*17=51>>51\n#### 51", "51");
  EXPECT_EQ(g.failure, kUnlinked);
  EXPECT_EQ(g.unlinked, (std::vector<std::string>{"step 1: 17"}));
}

TEST(Symbolic, TextStepsAreRead) {
  // The last computation has no annotation; unit words between the numbers are dropped.
  Graph g = parse_graph(
      "A room is 18 feet by 12 feet. Carpet costs $3 per square foot. How much is the carpet?",
      "The room is 18 * 12 = <<18*12=216>>216 square feet.\nThe carpet costs 216 square feet * "
      "$3 = $648.\n#### 648",
      "648");
  ASSERT_TRUE(g.linked()) << g.failure;
  ASSERT_EQ(g.steps.size(), 2u);
  EXPECT_TRUE(g.steps[1].text);
  EXPECT_EQ(g.steps[1].expression, "216*3");
  EXPECT_EQ(g.answer_step, 1);
}

TEST(Symbolic, TextStepsWithWordsTrivialAnnotationsAndImplicitProducts) {
  // "200 minus 174 equals 26": operators in words; "16+16 = <<32=32>>32": an annotation that
  // only states the result of the computation before it; "2+2(16)=34": a product without its
  // sign; "$864\u00a0+ $432": a no-break space.
  Graph g = parse_graph(
      "Ray swims a mile in 16 minutes, and in 2 minutes more than twice as long when it is warm. "
      "Jo raised $83, Al $91 and Bo $200. Bo pays 864 and 432 dollars. Nia has 16 and 16 cards.",
      "Warm = 2+2(16)=34 minutes\nThey raised 83 plus 91 equals <<83+91=174>>174.\nThey need "
      "200 minus 174 equals 26 more.\nBo pays $864\xC2\xA0+ $432 = $1,296.\nNia has 16+16 = "
      "<<32=32>>32 cards.\n#### 32",
      "32");
  std::vector<std::string> expressions;
  for (const Step& st : g.steps) expressions.push_back(st.expression + "=" + st.result_text);
  EXPECT_EQ(expressions, (std::vector<std::string>{"2+2*(16)=34", "83+91=174", "200-174=26",
                                                   "864+432=1,296", "16+16=32", "32=32"}));
  ASSERT_TRUE(g.linked()) << g.failure;
  ASSERT_EQ(g.answer_step, 5);
  // the trivial annotation's 32 is the text step's result
  const Literal& l32 = g.literals[g.steps[5].nodes[0].literal];
  ASSERT_EQ(l32.sources.size(), 1u);
  EXPECT_EQ(l32.sources[0].kind, Source::Kind::Step);
  EXPECT_EQ(l32.sources[0].index, 4);
}

TEST(Symbolic, ImplicitConstants) {
  // "3 + 1": one more (himself); June has 30 days; "32 x (30/60)": minutes per hour named in
  // the question only.
  Graph g = parse_graph(
      "Greg and his 3 siblings each read 2 books a day in June. A horse runs 30 minutes at 32 "
      "MPH.",
      "3+1=<<3+1=4>>4 people\n4*2=<<4*2=8>>8 books a day\n8*30=<<8*30=240>>240 books in June"
      "\n32*(30/60)=<<32*(30/60)=16>>16\n240+16=<<240+16=256>>256\n#### 256",
      "256");
  ASSERT_TRUE(g.linked()) << g.failure << " " << (g.unlinked.empty() ? "" : g.unlinked[0]);
}

TEST(Symbolic, AmbiguousLinkResolvedByCoverage) {
  // 2 is both "2 friends" and "twice", and the solution multiplies by 2 twice: the readings
  // that use both numbers (the solution uses every number of the question) are 3*2 with either
  // one and 6*2 with the other; both give 24x = 48, so masking the 2 is sound.
  Graph g = parse_graph(
      "James writes a 3-page letter to 2 different friends twice a week.  How many pages does he "
      "write in 4 weeks?",
      "He writes each friend 3*2=<<3*2=6>>6 pages a week\nSo he writes 6*2=<<6*2=12>>12 pages "
      "every week\nThat means he writes 12*4=<<12*4=48>>48 pages in 4 weeks\n#### 48",
      "48");
  ASSERT_TRUE(g.linked()) << g.failure;
  std::map<std::string, MaskOutcome> out;
  for (MaskOutcome& o : backward_masks(g)) out[g.numbers[o.number].written] = o;
  EXPECT_EQ(out["2"].cause, "");
  EXPECT_TRUE(GiNaC::normal(out["2"].f - 24 * unknown()).is_zero()) << out["2"].f;
  EXPECT_EQ(out["3"].cause, "");  // 3-page: x-page
  EXPECT_EQ(out["4"].cause, "");
}

TEST(Symbolic, AmbiguousLinkOfARepeatedNumberIsRefused) {
  // "30 days" twice and one 30 in the solution: with the first 30 masked, a reading that
  // takes the second gives an answer without x. (GSM8K test.)
  Graph g = parse_graph(
      "Shannon makes her own madeleine cookies and eats 2 a night as a treat.  She wants to make "
      "enough cookies to last her for 30 days by storing them in the freezer. Her recipe makes 1 "
      "dozen madeleine cookies.  How many dozens of cookies will she need to make so she has "
      "enough for 30 days?",
      "She eats 2 cookies a night so for 30 nights she needs 2*30 = <<2*30=60>>60 cookies\nHer "
      "recipe makes 12 cookies and she needs to make 60 cookies so that's 60/12 = <<60/12=5>>5 "
      "dozen\n#### 5",
      "5");
  ASSERT_TRUE(g.linked()) << g.failure;
  int refused = 0;
  for (const MaskOutcome& o : backward_masks(g))
    if (g.numbers[o.number].written == "30") {
      EXPECT_EQ(o.cause, kAmbiguous);
      EXPECT_FALSE(o.determined);
      ++refused;
    }
  EXPECT_EQ(refused, 2);
}

TEST(Symbolic, AmbiguousLinkPrefersANumbersOwnValue) {
  // 20 is "20 people" and also 100 - 80 (the complement of "80%"): the reading through the
  // number's own value is preferred, 20 - 20 * x/100 = 4. (GSM8K test.)
  Graph g = parse_graph(
      "John arm wrestles 20 people.  He beats 80%.  How many people did he lose to?",
      "He beats 20*.8=<<20*.8=16>>16 people\nSo he loses to 20-16=<<20-16=4>>4 people\n#### 4",
      "4");
  ASSERT_TRUE(g.linked()) << g.failure;
  std::map<std::string, MaskOutcome> out;
  for (MaskOutcome& o : backward_masks(g)) out[g.numbers[o.number].written] = o;
  EXPECT_EQ(out["80"].cause, "");
  EXPECT_TRUE(GiNaC::normal(out["80"].f - (20 - unknown() / 5)).is_zero()) << out["80"].f;
  EXPECT_EQ(out["20"].cause, "");
}

TEST(Symbolic, RealRootsBySturmSequences) {
  const GiNaC::symbol& x = unknown();
  EXPECT_EQ(count_real_roots(x * x - 4, std::nullopt), 2);
  EXPECT_EQ(count_real_roots(x * x - 4, GiNaC::numeric(0)), 1);
  EXPECT_EQ(count_real_roots(x * x + 1, std::nullopt), 0);
  EXPECT_EQ(count_real_roots(GiNaC::pow(x - 1, 3), std::nullopt), 1);        // one root, thrice
  EXPECT_EQ(count_real_roots(x * (x - 2) * (x + 3), GiNaC::numeric(0)), 1);  // 0 is not > 0
  EXPECT_EQ(count_real_roots(GiNaC::pow(x, 3) - 2, std::nullopt), 1);        // irrational root
}

TEST(Symbolic, SelfProductAndUnusedNumbersAreRefused) {
  Graph g = parse_graph("A square garden has sides of 7 meters and 3 trees. What is its area?",
                        "7*7=<<7*7=49>>49\n#### 49", "49");
  ASSERT_TRUE(g.linked()) << g.failure;
  auto masks = backward_masks(g);
  ASSERT_EQ(masks.size(), 2u);
  EXPECT_EQ(masks[0].cause, kSelfProduct);  // x * x in one step is not trusted
  EXPECT_EQ(masks[1].cause, kNotUsed);
}

TEST(Symbolic, FobarQueryIsMetaMathQAs) {
  EXPECT_EQ(fobar_question("Natalia sold clips to x of her friends. How many? ", "72"),
            "Natalia sold clips to x of her friends. How many?\nIf we know the answer to the above "
            "question is 72, what is the value of unknown variable x?");
}

TEST(Symbolic, SvStatementsByTemplate) {
  auto sv = [](const char* q) { return sv_question(q, "72").value_or("(none)"); };
  EXPECT_EQ(sv("Natalia sold clips to x of her friends in April. How many clips did Natalia sell "
               "altogether in April and May?"),
            "Natalia sold clips to x of her friends in April. Natalia sold 72 clips altogether in "
            "April and May. What is the value of unknown variable x?");
  EXPECT_EQ(sv("He has x cats. How many legs are there in the house?"),
            "He has x cats. There are 72 legs in the house. What is the value of unknown variable "
            "x?");
  EXPECT_EQ(sv("She has x pages. If she reads 3 a day, how many pages will she read in a week?"),
            "She has x pages. If she reads 3 a day, she will read 72 pages in a week. What is the "
            "value of unknown variable x?");
  EXPECT_EQ(sv("A hat costs $x. How much money does Tom spend?"),
            "A hat costs $x. Tom spends $72. What is the value of unknown variable x?");
  EXPECT_EQ(sv("A hat costs $x. What is the total cost of the hats?"),
            "A hat costs $x. The total cost of the hats is 72. What is the value of unknown "
            "variable x?");
  EXPECT_EQ(sv("Ann is x years older than Bo. How old is Ann now?"),
            "Ann is x years older than Bo. Ann is 72 years old now. What is the value of unknown "
            "variable x?");
  EXPECT_EQ(sv("He has x cats. How many apples were left?"),
            "He has x cats. 72 apples were left. What is the value of unknown variable x?");
  // Unsupported forms.
  EXPECT_EQ(sv("He has x cats. How long does the trip take?"), "(none)");
  EXPECT_EQ(sv("He has x cats. Find the total."), "(none)");
}

// ---------------------------------------------------------------------------------------------
// Hand-checked generated solutions: GSM8K train problems (line numbers of
// data/gsm8k/train.jsonl), the record produced for one masked number, and its full query and
// response, each read and checked by hand (every restated step, equation and solving step).

struct Case {
  int line;
  const char* question;
  const char* solution;
  const char* answer;
  const char* masked;  // the number as written in the question
  const char* type;    // FOBAR or SV
  const char* kind;    // linear, x in a denominator, non-linear
  const char* query;
  const char* response;
};

const Case kCases[] = {
    {1,
     R"(Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?)",
     R"(Natalia sold 48/2 = <<48/2=24>>24 clips in May.
Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
#### 72)",
     "72", "48", "FOBAR", "linear",
     R"(Natalia sold clips to x of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?
If we know the answer to the above question is 72, what is the value of unknown variable x?)",
     R"(Natalia sold x/2 clips in May.
Natalia sold x + x/2 = 1.5x clips altogether in April and May.
We are given that the answer to the question is 72, so we can write: 1.5x = 72.
Dividing both sides by 1.5, we get: x = 48.
The value of x is 48.
#### 48
The answer is: 48)"},
    {1,
     R"(Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?)",
     R"(Natalia sold 48/2 = <<48/2=24>>24 clips in May.
Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.
#### 72)",
     "72", "48", "SV", "linear",
     R"(Natalia sold clips to x of her friends in April, and then she sold half as many clips in May. Natalia sold 72 clips altogether in April and May. What is the value of unknown variable x?)",
     R"(To solve this problem, we need to determine the value of x.
Natalia sold x/2 clips in May.
Natalia sold x + x/2 = 1.5x clips altogether in April and May.
We know that the result is 72, so we can write: 1.5x = 72.
Dividing both sides by 1.5, we get: x = 48.
The value of x is 48.
#### 48
The answer is: 48)"},
    {2,
     R"(Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?)",
     R"(Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.
Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.
#### 10)",
     "10", "12", "SV", "linear",
     R"(Weng earns $x an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. She earned $10. What is the value of unknown variable x?)",
     R"(To solve this problem, we need to determine the value of x.
Weng earns x/60 per minute.
Working 50 minutes, she earned x/60 * 50 = 5x/6.
We know that the result is 10, so we can write: 5x/6 = 10.
Multiplying both sides by 6, we get: 5x = 60.
Dividing both sides by 5, we get: x = 12.
The value of x is 12.
#### 12
The answer is: 12)"},
    {2,
     R"(Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?)",
     R"(Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.
Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.
#### 10)",
     "10", "50", "FOBAR", "linear",
     R"(Weng earns $12 an hour for babysitting. Yesterday, she just did x minutes of babysitting. How much did she earn?
If we know the answer to the above question is 10, what is the value of unknown variable x?)",
     R"(Weng earns 12/60 = 0.2 per minute.
Working x minutes, she earned 0.2 * x = x/5.
We are given that the answer to the question is 10, so we can write: x/5 = 10.
Multiplying both sides by 5, we get: x = 50.
The value of x is 50.
#### 50
The answer is: 50)"},
    {20,
     R"(Tim rides his bike back and forth to work for each of his 5 workdays.  His work is 20 miles away.  He also goes for a weekend bike ride of 200 miles.    If he can bike at 25 mph how much time does he spend biking a week?)",
     R"(He bikes 20*2=<<20*2=40>>40 miles each day for work
So he bikes 40*5=<<40*5=200>>200 miles for work
That means he bikes a total of 200+200=<<200+200=400>>400 miles for work
So he bikes a total of 400/25=<<400/25=16>>16 hours
#### 16)",
     "16", "25", "FOBAR", "x in a denominator",
     R"(Tim rides his bike back and forth to work for each of his 5 workdays.  His work is 20 miles away.  He also goes for a weekend bike ride of 200 miles.    If he can bike at x mph how much time does he spend biking a week?
If we know the answer to the above question is 16, what is the value of unknown variable x?)",
     R"(He bikes 20 * 2 = 40 miles each day for work
So he bikes 40 * 5 = 200 miles for work
That means he bikes a total of 200 + 200 = 400 miles for work
So he bikes a total of 400/x hours
We are given that the answer to the question is 16, so we can write: 400/x = 16.
Multiplying both sides by x, we get: 400 = 16x.
Rearranging, we get: 16x = 400.
Dividing both sides by 16, we get: x = 25.
The value of x is 25.
#### 25
The answer is: 25)"},
    {24,
     R"(Ann's favorite store was having a summer clearance. For $75 she bought 5 pairs of shorts for $7 each and 2 pairs of shoes for $10 each. She also bought 4 tops, all at the same price. How much did each top cost?)",
     R"(She bought 5 shorts at $7 each so 5*7=$<<5*7=35>>35
She bought 2 pair of shoes at $10 each so 2*10=$<<2*10=20>>20
The shorts and shoes cost her 35+20 = $<<35+20=55>>55
We know she spent 75 total and the shorts and shoes cost $55 which left a difference of 75-55 = $<<75-55=20>>20
She bought 4 tops for a total of $20 so 20/4 = $5
#### 5)",
     "5", "4", "FOBAR", "x in a denominator",
     R"(Ann's favorite store was having a summer clearance. For $75 she bought 5 pairs of shorts for $7 each and 2 pairs of shoes for $10 each. She also bought x tops, all at the same price. How much did each top cost?
If we know the answer to the above question is 5, what is the value of unknown variable x?)",
     R"(5 * 7 = 35.
She bought 2 pair of shoes at $10 each so 2 * 10 = 20
The shorts and shoes cost her 35 + 20 = 55
We know she spent 75 total and the shorts and shoes cost $55 which left a difference of 75 - 55 = 20
She bought x tops for a total of $20 so 20/x
We are given that the answer to the question is 5, so we can write: 20/x = 5.
Multiplying both sides by x, we get: 20 = 5x.
Rearranging, we get: 5x = 20.
Dividing both sides by 5, we get: x = 4.
The value of x is 4.
#### 4
The answer is: 4)"},
    {31,
     R"(Ann, Bill, Cate, and Dale each buy personal pan pizzas cut into 4 pieces. If Bill and Dale eat 50% of their pizzas and Ann and Cate eat 75% of the pizzas, how many pizza pieces are left uneaten?)",
     R"(In total, there are 4 x 4 = <<4*4=16>>16 pizza pieces.
Bill and Dale eat 2 x 4 x 50% = <<2*4*50*.01=4>>4 pieces.
Ann and Cate eat 2 x 4 x 75% = <<2*4*75*.01=6>>6 pieces.
The four of them eat 4 + 6 = <<4+6=10>>10 pieces.
There are 16 - 10 = <<16-10=6>>6 pizza pieces uneaten.
#### 6)",
     "6", "75", "FOBAR", "linear",
     R"(Ann, Bill, Cate, and Dale each buy personal pan pizzas cut into 4 pieces. If Bill and Dale eat 50% of their pizzas and Ann and Cate eat x% of the pizzas, how many pizza pieces are left uneaten?
If we know the answer to the above question is 6, what is the value of unknown variable x?)",
     R"(In total, there are 4 * 4 = 16 pizza pieces.
2 * 4 * 50 * 0.01 = 4.
2 * 4 * x * 0.01 = 0.08x.
The four of them eat 4 + 0.08x = 0.08x + 4 pieces.
There are 16 - (0.08x + 4) = 12 - 0.08x pizza pieces uneaten.
We are given that the answer to the question is 6, so we can write: 12 - 0.08x = 6.
Subtracting 12 from both sides, we get: -0.08x = -6.
Dividing both sides by -0.08, we get: x = 75.
The value of x is 75.
#### 75
The answer is: 75)"},
    {39,
     R"(Artemis is making tea for a party. She knows her mom drinks an 8-ounce cup of tea and uses one ounce of tea. She will use this same ratio for the party. The party has 12 people there and each of them wants a 6-ounce cup of tea. How many ounces of tea does she need?)",
     R"(She is making 72 ounces of water because 12 x 6 = <<12*6=72>>72
She needs 9 ounces of tea because 72 / 8 = <<72/8=9>>9
#### 9)",
     "9", "8", "FOBAR", "x in a denominator",
     R"(Artemis is making tea for a party. She knows her mom drinks an x-ounce cup of tea and uses one ounce of tea. She will use this same ratio for the party. The party has 12 people there and each of them wants a 6-ounce cup of tea. How many ounces of tea does she need?
If we know the answer to the above question is 9, what is the value of unknown variable x?)",
     R"(She is making 72 ounces of water because 12 * 6 = 72
She needs 72/x ounces of tea because 72/x
We are given that the answer to the question is 9, so we can write: 72/x = 9.
Multiplying both sides by x, we get: 72 = 9x.
Rearranging, we get: 9x = 72.
Dividing both sides by 9, we get: x = 8.
The value of x is 8.
#### 8
The answer is: 8)"},
    {39,
     R"(Artemis is making tea for a party. She knows her mom drinks an 8-ounce cup of tea and uses one ounce of tea. She will use this same ratio for the party. The party has 12 people there and each of them wants a 6-ounce cup of tea. How many ounces of tea does she need?)",
     R"(She is making 72 ounces of water because 12 x 6 = <<12*6=72>>72
She needs 9 ounces of tea because 72 / 8 = <<72/8=9>>9
#### 9)",
     "9", "6", "SV", "linear",
     R"(Artemis is making tea for a party. She knows her mom drinks an 8-ounce cup of tea and uses one ounce of tea. She will use this same ratio for the party. The party has 12 people there and each of them wants a x-ounce cup of tea. She needs 9 ounces of tea. What is the value of unknown variable x?)",
     R"(To solve this problem, we need to determine the value of x.
She is making 12x ounces of water because 12 * x = 12x
She needs 1.5x ounces of tea because 12x/8 = 1.5x
We know that the result is 9, so we can write: 1.5x = 9.
Dividing both sides by 1.5, we get: x = 6.
The value of x is 6.
#### 6
The answer is: 6)"},
    {182,
     R"(A certain tree was 100 meters tall at the end of 2017. It will grow 10% more than its previous height each year. How long has the tree grown from 2017 until the end of 2019?)",
     R"(At the end of 2018, the tree will grow 100 x 10/100 = <<100*10/100=10>>10 meters more.
Thus, its height at the end of 2018 is 100 + 10 = <<100+10=110>>110 meters.
At the end of 2019, the tree will grow 110 x 10/100 = <<110*10/100=11>>11 meters more.
So, its height at the end of 2019 is 110 + 11 = <<110+11=121>>121 meters.
Therefore, the tree has grown 121 - 100 = <<121-100=21>>21 meters.
#### 21)",
     "21", "10", "FOBAR", "non-linear",
     R"(A certain tree was 100 meters tall at the end of 2017. It will grow x% more than its previous height each year. How long has the tree grown from 2017 until the end of 2019?
If we know the answer to the above question is 21, what is the value of unknown variable x?)",
     R"(100 * x/100 = x.
100 + x = x + 100.
At the end of 2019, the tree will grow (x + 100) * x/100 = x^2/100 + x meters more.
So, its height at the end of 2019 is x + 100 + x^2/100 + x = x^2/100 + 2x + 100 meters.
Therefore, the tree has grown x^2/100 + 2x + 100 - 100 = x^2/100 + 2x meters.
We are given that the answer to the question is 21, so we can write: x^2/100 + 2x = 21.
This equation is not linear in x.
Rearranging, we get: x^2 + 200x - 2100 = 0.
Factoring, we get: (x - 10)(x + 210) = 0.
So x = 10 or x = -210.
Since x must be positive, x = 10.
The value of x is 10.
#### 10
The answer is: 10)"},
    {285,
     R"(Matt buys a massager.  At the lowest setting, it vibrates at 1600 vibrations per second.  At the highest setting, it vibrates 60% faster.  Matt uses it for 5 minutes at the highest setting.  How many vibrations does he experience?)",
     R"(At the highest setting, it vibrates 1600*.6=<<1600*.6=960>>960 vibrations per second faster than the lowest setting
So it vibrates at 1600+960=<<1600+960=2560>>2560 vibrations per second
Matt uses it for 5 minutes so that is 5*60=<<5*60=300>>300 seconds
That means he experienced 2560*300=<<2560*300=768000>>768,000 vibrations
#### 768000)",
     "768000", "5", "FOBAR", "linear",
     R"(Matt buys a massager.  At the lowest setting, it vibrates at 1600 vibrations per second.  At the highest setting, it vibrates 60% faster.  Matt uses it for x minutes at the highest setting.  How many vibrations does he experience?
If we know the answer to the above question is 768000, what is the value of unknown variable x?)",
     R"(At the highest setting, it vibrates 1600 * 0.6 = 960 vibrations per second faster than the lowest setting
So it vibrates at 1600 + 960 = 2560 vibrations per second
Matt uses it for x minutes so that is x * 60 = 60x seconds
That means he experienced 2560 * (60x) = 153600x vibrations
We are given that the answer to the question is 768000, so we can write: 153600x = 768000.
Dividing both sides by 153600, we get: x = 5.
The value of x is 5.
#### 5
The answer is: 5)"},
    {700,
     R"(Marla is planning the lunch menu for an elementary school. There are 5 third grade classes with 30 students each, 4 fourth grade classes with 28 students each, and 4 fifth grade classes with 27 students each. Each student gets a hamburger, which costs $2.10, some carrots, which cost $0.50, and a cookie, which cost $0.20. How much does one lunch for all the students cost?)",
     R"(First find the total number of students in third grade 5 classes * 30 students/class = <<5*30=150>>150 students
Then find the total number of students in fourth grade 4 classes * 28 students/class = <<4*28=112>>112 students
Then find the total number of student in fifth grade 4 classes * 27 students/class = <<4*27=108>>108 students
Now add the number of students in each grade to find the total number of students 150 students + 112 students + 108 students = <<150+112+108=370>>370 students
Now find the total cost of one lunch $2.10 + $0.50 + $0.20 = $<<2.10+0.50+0.20=2.80>>2.80
Now multiply that cost by the number of students to find the total cost for the school $2.80/student * 370 students = $<<2.80*370=1036>>1036
#### 1036)",
     "1036", "2.10", "FOBAR", "linear",
     R"(Marla is planning the lunch menu for an elementary school. There are 5 third grade classes with 30 students each, 4 fourth grade classes with 28 students each, and 4 fifth grade classes with 27 students each. Each student gets a hamburger, which costs $x, some carrots, which cost $0.50, and a cookie, which cost $0.20. How much does one lunch for all the students cost?
If we know the answer to the above question is 1036, what is the value of unknown variable x?)",
     R"(First find the total number of students in third grade 5 classes * 30 students/class = 150 students
Then find the total number of students in fourth grade 4 classes * 28 students/class = 112 students
Then find the total number of student in fifth grade 4 classes * 27 students/class = 108 students
Now add the number of students in each grade to find the total number of students 150 students + 112 students + 108 students = 370 students
Now find the total cost of one lunch x + 0.50 + 0.20 = x + 0.7
Now multiply that cost by the number of students to find the total cost for the school $(x + 0.7)/student * 370 students = $370x + 259
We are given that the answer to the question is 1036, so we can write: 370x + 259 = 1036.
Subtracting 259 from both sides, we get: 370x = 777.
Dividing both sides by 370, we get: x = 2.1.
The value of x is 2.1.
#### 2.1
The answer is: 2.1)"},
    {1541,
     R"(Sam invested $10,000 and earned 20% interest compounded for 3 years. He then invested more until he had three times as much invested. The next year, he got a 15% return on his investment. How much money does he have now?)",
     R"(After one year, Sam had $10,000 * 1.2 = $<<10000*1.2=12000>>12,000.
After two years, he had $12,000 * 1.2 = $<<12000*1.2=14400>>14,400.
After the third year, he had $14,400 * 1.2 = $<<14400*1.2=17280>>17,280.
He then invested more money until he had 3 * $17,280 = $<<3*17280=51840>>51,840.
The first year after that, he had $51,840 * 1.15 = $<<51840*1.15=59616>>59,616.
#### 59,616)",
     "59616", "20", "FOBAR", "non-linear",
     R"(Sam invested $10,000 and earned x% interest compounded for 3 years. He then invested more until he had three times as much invested. The next year, he got a 15% return on his investment. How much money does he have now?
If we know the answer to the above question is 59616, what is the value of unknown variable x?)",
     R"(After one year, Sam had 10000 * (x/100 + 1) = 100x + 10000.
After two years, he had (100x + 10000) * (x/100 + 1) = x^2 + 200x + 10000.
After the third year, he had (x^2 + 200x + 10000) * (x/100 + 1) = x^3/100 + 3x^2 + 300x + 10000.
He then invested more money until he had 3 * (x^3/100 + 3x^2 + 300x + 10000) = 0.03x^3 + 9x^2 + 900x + 30000.
The first year after that, he had (0.03x^3 + 9x^2 + 900x + 30000) * 1.15 = 0.0345x^3 + 10.35x^2 + 1035x + 34500.
We are given that the answer to the question is 59616, so we can write: 0.0345x^3 + 10.35x^2 + 1035x + 34500 = 59616.
This equation is not linear in x.
Rearranging, we get: 69x^3 + 20700x^2 + 2070000x - 50232000 = 0.
Factoring, we get: 69(x - 20)(x^2 + 320x + 36400) = 0.
x^2 + 320x + 36400 = 0 has no real solution.
So x = 20.
The value of x is 20.
#### 20
The answer is: 20)"},
    {1839,
     R"(Jacob loves to build things. In Jacob's toy bin there are 18 red blocks. There are 7 more yellow blocks than red blocks. There are also 14 more blue blocks than red blocks. How many blocks are there in all?)",
     R"(The number of yellow blocks is 18 blocks + 7 blocks = <<18+7=25>>25 blocks.
The number of blue blocks is 18 blocks + 14 blocks = <<18+14=32>>32 blocks.
The total number of red, yellow, and blue blocks is 18 blocks + 25 blocks + 32 blocks = <<18+25+32=75>>75 blocks.
#### 75)",
     "75", "18", "FOBAR", "linear",
     R"(Jacob loves to build things. In Jacob's toy bin there are x red blocks. There are 7 more yellow blocks than red blocks. There are also 14 more blue blocks than red blocks. How many blocks are there in all?
If we know the answer to the above question is 75, what is the value of unknown variable x?)",
     R"(The number of yellow blocks is x blocks + 7 blocks = x + 7 blocks.
The number of blue blocks is x blocks + 14 blocks = x + 14 blocks.
The total number of red, yellow, and blue blocks is x blocks + (x + 7) blocks + (x + 14) blocks = 3x + 21 blocks.
We are given that the answer to the question is 75, so we can write: 3x + 21 = 75.
Subtracting 21 from both sides, we get: 3x = 54.
Dividing both sides by 3, we get: x = 18.
The value of x is 18.
#### 18
The answer is: 18)"},
    {2100,
     R"(Elmo has 3 times as many books as his sister, Laura. Laura has twice as many books as her brother, Stu. If Elmo has 24 books, how many books does Stu have?)",
     R"(Laura has 24/3=<<24/3=8>>8 books.
Stu has 8/2=<<8/2=4>>4 books.
#### 4)",
     "4", "3", "FOBAR", "x in a denominator",
     R"(Elmo has x times as many books as his sister, Laura. Laura has twice as many books as her brother, Stu. If Elmo has 24 books, how many books does Stu have?
If we know the answer to the above question is 4, what is the value of unknown variable x?)",
     R"(Laura has 24/x books.
Stu has 24/x/2 = 12/x books.
We are given that the answer to the question is 4, so we can write: 12/x = 4.
Multiplying both sides by x, we get: 12 = 4x.
Rearranging, we get: 4x = 12.
Dividing both sides by 4, we get: x = 3.
The value of x is 3.
#### 3
The answer is: 3)"},
    {2100,
     R"(Elmo has 3 times as many books as his sister, Laura. Laura has twice as many books as her brother, Stu. If Elmo has 24 books, how many books does Stu have?)",
     R"(Laura has 24/3=<<24/3=8>>8 books.
Stu has 8/2=<<8/2=4>>4 books.
#### 4)",
     "4", "24", "SV", "linear",
     R"(Elmo has 3 times as many books as his sister, Laura. Laura has twice as many books as her brother, Stu. If Elmo has x books, Stu has 4 books. What is the value of unknown variable x?)",
     R"(To solve this problem, we need to determine the value of x.
Laura has x/3 books.
Stu has x/3/2 = x/6 books.
We know that the result is 4, so we can write: x/6 = 4.
Multiplying both sides by 6, we get: x = 24.
The value of x is 24.
#### 24
The answer is: 24)"},
    {2800,
     R"(Jake agrees to work part of his debt off.  He owed someone $100 but paid them $40 before agreeing to work off the rest.   He worked for $15 an hour.  How many hours did he have to work?)",
     R"(He has to work off $100-$40=$<<100-40=60>>60.
So he has to work $60/15=<<60/15=4>>4 hours
#### 4)",
     "4", "15", "FOBAR", "x in a denominator",
     R"(Jake agrees to work part of his debt off.  He owed someone $100 but paid them $40 before agreeing to work off the rest.   He worked for $x an hour.  How many hours did he have to work?
If we know the answer to the above question is 4, what is the value of unknown variable x?)",
     R"(He has to work off 100 - 40 = 60.
So he has to work 60/x hours
We are given that the answer to the question is 4, so we can write: 60/x = 4.
Multiplying both sides by x, we get: 60 = 4x.
Rearranging, we get: 4x = 60.
Dividing both sides by 4, we get: x = 15.
The value of x is 15.
#### 15
The answer is: 15)"},
    {3065,
     R"(Buying a toaster requires an insurance plan that is 20% of the MSRP, plus a mandatory state tax rate of 50% after the insurance plan calculation. Jon chooses to buy a toaster that costs $30 at MSRP. What is the total he must pay?)",
     R"(The insurance plan costs $30*0.2=$<<30*0.2=6>>6.
The pre-state tax total is $30+$6=$<<30+6=36>>36.
State tax will be $36*0.5=$<<36*0.5=18>>18.
Jon needs to pay $18+$36=$<<18+36=54>>54 for his new toaster.
#### 54)",
     "54", "20", "FOBAR", "linear",
     R"(Buying a toaster requires an insurance plan that is x% of the MSRP, plus a mandatory state tax rate of 50% after the insurance plan calculation. Jon chooses to buy a toaster that costs $30 at MSRP. What is the total he must pay?
If we know the answer to the above question is 54, what is the value of unknown variable x?)",
     R"(The insurance plan costs 30 * (x/100) = 0.3x.
The pre-state tax total is 30 + 0.3x = 0.3x + 30.
State tax will be (0.3x + 30) * 0.5 = 0.15x + 15.
Jon needs to pay 0.15x + 15 + 0.3x + 30 = 0.45x + 45 for his new toaster.
We are given that the answer to the question is 54, so we can write: 0.45x + 45 = 54.
Subtracting 45 from both sides, we get: 0.45x = 9.
Dividing both sides by 0.45, we get: x = 20.
The value of x is 20.
#### 20
The answer is: 20)"},
    {3500,
     R"(Isabella is twice as old as Antonio.  In 18 months, she will be 10 years old.  How many months old is Antonio?)",
     R"(First, we determine that Isabella will be 10*12= <<10*12=120>>120 months old at age 10, to find a number to compare her age to Antonio's with.
Then we subtract the 18 months from the total of 120 months to find 120-18= <<120-18=102>>102 months, which is the age Isabella is currently.
Since at 102 months old Isabella is twice as old as Antonio, we take 102/2= <<102/2=51>>51 months as Antonio's age.
#### 51)",
     "51", "18", "FOBAR", "linear",
     R"(Isabella is twice as old as Antonio.  In x months, she will be 10 years old.  How many months old is Antonio?
If we know the answer to the above question is 51, what is the value of unknown variable x?)",
     R"(First, we determine that Isabella will be 10 * 12 = 120 months old at age 10, to find a number to compare her age to Antonio's with.
Then we subtract the x months from the total of 120 months to find 120 - x months, which is the age Isabella is currently.
Since at (120 - x) months old Isabella is twice as old as Antonio, we take (120 - x)/2 = 60 - x/2 months as Antonio's age.
We are given that the answer to the question is 51, so we can write: 60 - x/2 = 51.
Subtracting 60 from both sides, we get: -x/2 = -9.
Multiplying both sides by -2, we get: x = 18.
The value of x is 18.
#### 18
The answer is: 18)"},
    {3678,
     R"(A pumpkin patch allows people to come pick pumpkins to carve in the fall every year. They charge $3 per person for a pumpkin. The remaining pumpkins get turned into cans of pie filling, 3 pumpkins to a can. They grew 83 pumpkins this year and made $96 selling pumpkins for carving. How many cans of pie filling will the pumpkin patch produce?)",
     R"(The pumpkin patch sold 96 / 3 = <<96/3=32>>32 pumpkins.
They have 83 - 32 = <<83-32=51>>51 pumpkins left.
Thus, the pumpkin patch will produce 51 / 3 = <<51/3=17>>17 cans of pie filling.
#### 17)",
     "17", "96", "FOBAR", "linear",
     R"(A pumpkin patch allows people to come pick pumpkins to carve in the fall every year. They charge $3 per person for a pumpkin. The remaining pumpkins get turned into cans of pie filling, 3 pumpkins to a can. They grew 83 pumpkins this year and made $x selling pumpkins for carving. How many cans of pie filling will the pumpkin patch produce?
If we know the answer to the above question is 17, what is the value of unknown variable x?)",
     R"(The pumpkin patch sold x/3 pumpkins.
They have 83 - x/3 = (249 - x)/3 pumpkins left.
Thus, the pumpkin patch will produce (249 - x)/3/3 = (249 - x)/9 cans of pie filling.
We are given that the answer to the question is 17, so we can write: (249 - x)/9 = 17.
Multiplying both sides by 9, we get: 249 - x = 153.
Subtracting 249 from both sides, we get: -x = -96.
Multiplying both sides by -1, we get: x = 96.
The value of x is 96.
#### 96
The answer is: 96)"},
    {3678,
     R"(A pumpkin patch allows people to come pick pumpkins to carve in the fall every year. They charge $3 per person for a pumpkin. The remaining pumpkins get turned into cans of pie filling, 3 pumpkins to a can. They grew 83 pumpkins this year and made $96 selling pumpkins for carving. How many cans of pie filling will the pumpkin patch produce?)",
     R"(The pumpkin patch sold 96 / 3 = <<96/3=32>>32 pumpkins.
They have 83 - 32 = <<83-32=51>>51 pumpkins left.
Thus, the pumpkin patch will produce 51 / 3 = <<51/3=17>>17 cans of pie filling.
#### 17)",
     "17", "83", "SV",
     "linear", R"(A pumpkin patch allows people to come pick pumpkins to carve in the fall every year. They charge $3 per person for a pumpkin. The remaining pumpkins get turned into cans of pie filling, 3 pumpkins to a can. They grew x pumpkins this year and made $96 selling pumpkins for carving. The pumpkin patch will produce 17 cans of pie filling. What is the value of unknown variable x?)",
     R"(To solve this problem, we need to determine the value of x.
The pumpkin patch sold 96/3 = 32 pumpkins.
They have x - 32 pumpkins left.
Thus, the pumpkin patch will produce (x - 32)/3 cans of pie filling.
We know that the result is 17, so we can write: (x - 32)/3 = 17.
Multiplying both sides by 3, we get: x - 32 = 51.
Adding 32 to both sides, we get: x = 83.
The value of x is 83.
#### 83
The answer is: 83)"},
    {4200,
     R"(Jenn is saving up money to buy a bike. She has 5 jars full of quarters. Each jar can hold 160 quarters. If the bike costs 180 dollars, how much money will she have left over after buying it?)",
     R"(Jenn has 5 * 160 = <<5*160=800>>800 quarters.
The quarters are worth 800 * 0.25 = <<800*0.25=200>>200 dollars.
After buying the bike she will have 200 - 180 = <<200-180=20>>20 dollars left.
#### 20)",
     "20", "5", "SV", "linear",
     R"(Jenn is saving up money to buy a bike. She has x jars full of quarters. Each jar can hold 160 quarters. If the bike costs 180 dollars, she will have $20 left over after buying it. What is the value of unknown variable x?)",
     R"(To solve this problem, we need to determine the value of x.
Jenn has x * 160 = 160x quarters.
The quarters are worth 160x * 0.25 = 40x dollars.
After buying the bike she will have 40x - 180 dollars left.
We know that the result is 20, so we can write: 40x - 180 = 20.
Adding 180 to both sides, we get: 40x = 200.
Dividing both sides by 40, we get: x = 5.
The value of x is 5.
#### 5
The answer is: 5)"},
};

TEST(SymbolicSolutions, HandCheckedResponses) {
  int denominators = 0, nonlinear = 0, sv = 0;
  for (const Case& c : kCases) {
    SCOPED_TRACE(::testing::Message()
                 << "train line " << c.line << ", " << c.type << " masking " << c.masked);
    SymbolicResult r = symbolic_backward(c.question, c.solution, c.answer);
    const SymbolicRecord* rec = nullptr;
    for (const auto& x : r.records)
      if (x.masked == c.masked && x.type == c.type) rec = &x;
    ASSERT_NE(rec, nullptr);
    EXPECT_EQ(rec->kind, c.kind);
    EXPECT_EQ(rec->query, c.query);
    EXPECT_EQ(rec->response, c.response);
    denominators += std::string(c.kind) == "x in a denominator";
    nonlinear += std::string(c.kind) == "non-linear";
    sv += std::string(c.type) == "SV";
  }
  EXPECT_GE(std::size(kCases), 20u);
  EXPECT_GE(denominators, 5);
  EXPECT_GE(nonlinear, 2);
  EXPECT_GE(sv, 5);
}

// Every number a response states is checked before it is written: a response is refused rather
// than written wrong. Here the restated steps and equations are re-checked independently by
// substituting x's value into each "lhs = rhs" of the solving part.
TEST(SymbolicSolutions, SolvingEquationsHoldAtX) {
  for (const Case& c : kCases) {
    SymbolicResult r = symbolic_backward(c.question, c.solution, c.answer);
    for (const auto& rec : r.records) {
      EXPECT_NE(rec.response.find("The value of x is " + rec.x + ".\n#### " + rec.x +
                                  "\nThe answer is: " + rec.x),
                std::string::npos);
      EXPECT_TRUE(rec.response.ends_with("The answer is: " + rec.x));
    }
  }
}

}  // namespace
}  // namespace metamath::bootstrap
