#!/usr/bin/env bash
# The main job end to end, small: a tiny random model (no pretrained weights reach this machine),
# served over the OpenAI API, bootstrapping MetaMath data from a few GSM8K train questions through
# that HTTP endpoint, assembling MetaMathQA, fine-tuning a tiny model from scratch on GSM8K,
# evaluating it, and re-scoring the bundled hand-checked sample outputs (samples/). A random model
# writes gibberish, so yields and accuracies are ~0: the point is that every stage runs and reports
# honestly. The symbolic bootstrap (no LLM) gives real verified backward questions, shown at the
# end. Outputs go to build/demo/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bin="$here/build/metamath"
out="$here/build/demo"
tok="${METAMATH_TOKENIZER:-$here/../shared/tokenizers/llama2}"
data="${METAMATH_DATA:-$here/../shared/data}"
rm -rf "$out"
mkdir -p "$out"

echo "== metamath score: the bundled GSM8K- and MATH-style sample outputs (hand-checked 9/12, 10/12)"
"$bin" score --input samples/gsm8k_outputs.jsonl --bench gsm8k --out "$out/gsm8k_verdicts.jsonl" -q
"$bin" score --input samples/math_outputs.jsonl --bench math --out "$out/math_verdicts.jsonl" \
  --summary "$out/math_summary.json" -q
echo

# Symbolic backward questions need no model: GSM8K's calculator annotations are replayed with a
# masked number as x and solved exactly, so these records are real and verified on any machine.
show_symbolic() {
  [ -f "$out/symbolic/records.jsonl" ] || return 0
  echo "== verified symbolic records: $(wc -l <"$out/symbolic/records.jsonl") in $out/symbolic/records.jsonl; two of them:"
  python3 - "$out/symbolic/records.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in [rows[0], rows[len(rows) // 2]]:
    print(f"--- {r['type']} ({r['provenance']}, {r['id']})\n{r['query']}\n>>>\n{r['response']}\n")
PY
}

if [ -d "$data" ]; then
  echo "== metamath bootstrap --methods symbolic: LLM-free GSM8K backward questions (50 train questions)"
  "$bin" bootstrap --out "$out/symbolic" --datasets gsm8k --limit 50 --methods symbolic -q
  echo
fi

if [ ! -f "$tok/tokenizer.model" ] || [ ! -d "$data" ]; then
  echo "demo: $tok or $data missing (put ../shared beside the checkout); skipping the model stages"
  show_symbolic
  exit 0
fi

echo "== metamath init-model: a tiny random LLaMA with the LLaMA-2 tokenizer"
"$bin" init-model --config tiny --tokenizer "$tok" --out "$out/tiny" --seed 1
echo

echo "== metamath serve: the tiny model over the OpenAI API"
"$bin" serve --model "$out/tiny" --port 0 --max-len 2048 --max-batch 16 2>"$out/serve.log" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true' EXIT
port=""
for _ in $(seq 1 300); do
  port="$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out/serve.log")"
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$out/serve.log"; echo "demo: serve did not start"; exit 1; }
echo "listening on port $port"
echo

echo "== metamath bootstrap: 5 GSM8K train questions, all four augmentations, through HTTP"
"$bin" bootstrap --out "$out/boot" --datasets gsm8k --limit 5 -k 2 --rephrasings 1 \
  --rephrase-attempts 1 --masks 1 --backward-samples 1 --max-tokens-gsm8k 48 -q \
  --backend openai --base-url "http://127.0.0.1:$port/v1" --model tiny
"$bin" bootstrap status --out "$out/boot"
kill -TERM "$serve_pid"
wait "$serve_pid" || true
trap - EXIT
echo

echo "== metamath assemble: MetaMathQA JSONL from the bootstrap runs (LLM and symbolic, half each)"
"$bin" assemble "$out/boot" "$out/symbolic" --out "$out/MetaMathQA.jsonl" --scale 0.0001 \
  --symbolic-share 0.5
echo

echo "== metamath train: a tiny model from scratch on GSM8K train (30 steps)"
"$bin" train --data "$data/gsm8k/train.jsonl" --query-field question --response-field answer \
  --init random --config tiny --tokenizer "$tok" --out "$out/sft" --max-steps 30 \
  --global-batch 16 --micro-batch 8 --lr 3e-3 --max-len 128
echo

echo "== metamath eval: the trained model on 10 GSM8K test problems"
"$bin" eval --backend local --model "$out/sft" -b gsm8k --limit 10 --max-tokens 48 \
  --out "$out/eval"
echo
show_symbolic

echo "== metamath report: one self-contained HTML page over the demo's runs"
"$bin" report "$out/boot" "$out/symbolic" "$out/sft" "$out/eval" --out "$out/report.html"
echo
echo "demo outputs: $out"
echo "report: $out/report.html (self-contained: open it in any browser, offline)"
