#!/usr/bin/env bash
# The main job on bundled sample data: until the generation pipeline exists, it re-scores the
# project's own sample model outputs (samples/*.jsonl) with the answer checker.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bin=build/metamath
out=build/demo
mkdir -p "$out"
echo "== metamath score: GSM8K-style sample outputs"
"$bin" score --input samples/gsm8k_outputs.jsonl --bench gsm8k --out "$out/gsm8k_verdicts.jsonl"
echo
echo "== metamath score: MATH-style sample outputs (per subject and level)"
"$bin" score --input samples/math_outputs.jsonl --bench math --out "$out/math_verdicts.jsonl" \
  --summary "$out/math_summary.json"
echo
echo "verdicts: $out/gsm8k_verdicts.jsonl $out/math_verdicts.jsonl"
