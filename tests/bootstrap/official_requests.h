#pragma once
// Official requests (bootstrap/official_prompts.h) written out by hand for the fixture prompt set
// in tests/bootstrap/fixtures/official_prompts (our own shots in the official layout): the prompt
// file, then the question as the official scripts ask it. Shared by the unit tests of the request
// builder and the pipeline tests that check what bootstrap sends. Header-only.

namespace metamath::bootstrap::testing {

// FOBAR, MATH, "Compute $7 \cdot 6$." with 7 masked: "### " before "If we know" and "$X$".
inline constexpr const char* kOfficialFobarMathRequest =
    "Find the unknown variable $X$ from the answer each problem is given.\n"
    "\n"
    "Question: What is $2^X$?\n"
    "### If we know the answer to the above question is 32, what is the value of unknown "
    "variable $X$?\n"
    "A: Let's think step by step.\n"
    "We have $2^X = 32 = 2^5$, so $X = 5$.\n"
    "The value of X is 5.\n"
    "\n"
    "Question: Compute $X \\cdot 6$.\n"
    "### If we know the answer to the above question is 42, what is the value of unknown "
    "variable $X$?\n"
    "A: Let's think step by step.\n";

// Self-Verification step 1, GSM8K: the question's final sentence and the answer 42, with a space
// before "Result:" as the script has.
inline constexpr const char* kOfficialSvRewriteGsmRequest =
    "Help me turn a question and its answer into one statement.\n"
    "\n"
    "Question: How many pens does Tom have? The answer is 12.\n"
    "Result: Tom has 12 pens.\n"
    "\n"
    "Question: How many apples does he have? The answer is 42.\n"
    " Result: ";

}  // namespace metamath::bootstrap::testing
