#!/usr/bin/env bash
# Builds the libFuzzer target for the answer checker and runs it.
#
#   fuzz/run.sh [SECONDS]      (default 60)
#
# Configures and builds build-fuzz/ with clang++-14 (-DMETAMATH_FUZZ=ON), builds a seed corpus from
# the MATH train/test answers (one file per distinct answer plus "answer\nshuffled answer" pairs)
# in build-fuzz/corpus/seed, and runs latex_fuzz for SECONDS with -timeout=1 -rss_limit_mb=2048
# -max_len=512, in FUZZ_WORKERS processes (default 1). New inputs go to build-fuzz/corpus/work
# (minimised first once it has grown past FUZZ_MINIMIZE_OVER files), crash inputs to
# build-fuzz/artifacts/.
# Exits non-zero on any crash, sanitizer report, leak, timeout or over-budget input, or build error.
#
# Environment: METAMATH_DATA (data folder, default ../shared/data next to the repo), CXX_FUZZ
# (default clang++-14), FUZZ_PAIRS (number of seed pairs, default 3000), FUZZ_JOBS (build jobs).
set -euo pipefail

secs="${1:-60}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
  echo "usage: fuzz/run.sh [SECONDS]" >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-fuzz"
cxx="${CXX_FUZZ:-clang++-14}"
data="${METAMATH_DATA:-$root/../shared/data}"
pairs="${FUZZ_PAIRS:-3000}"
jobs="${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}"

summary() { echo "fuzz summary: $*"; }

if ! command -v "$cxx" >/dev/null 2>&1; then
  summary "FAIL - $cxx not found (install clang-14 libfuzzer-14-dev libclang-rt-14-dev)"
  exit 1
fi

echo "fuzz: configuring $build with $cxx"
if ! cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMETAMATH_FUZZ=ON -DMETAMATH_TESTS=OFF \
      -DMETAMATH_BENCH=OFF >"$build.configure.log" 2>&1; then
  cat "$build.configure.log" >&2
  summary "FAIL - cmake configure failed"
  exit 1
fi
rm -f "$build.configure.log"
echo "fuzz: building latex_fuzz"
if ! cmake --build "$build" --target latex_fuzz -j "$jobs"; then
  summary "FAIL - build failed"
  exit 1
fi

# ---- seed corpus ---------------------------------------------------------------------------------
seed="$build/corpus/seed"
work="$build/corpus/work"
artifacts="$build/artifacts"
rm -rf "$seed"
mkdir -p "$seed" "$work" "$artifacts"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
"$py" - "$data" "$seed" "$pairs" <<'PY'
import hashlib, json, os, random, sys
data, out, npairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
answers = []
for name in ("math/train.jsonl", "math/test.jsonl"):
    path = os.path.join(data, name)
    if not os.path.exists(path):
        if os.environ.get("CI", "") not in ("", "0", "false"):
            sys.exit("fuzz: %s not found, and CI is set: the seed corpus needs the real data" % path)
        print("fuzz: %s not found; seeding from the built-in examples only" % path)
        continue
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                answers.append(json.loads(line).get("answer", ""))
# a few hand-written seeds so the corpus is never empty
answers += ["\\frac{1}{2}", "0.5", "(1,2)", "[0,\\infty)",
            "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "x^2+2x+1", "\\sqrt[3]{2}",
            "10\\%", "\\$1,000", "\\text{(A)}", "2\\pi", "x=5"]
distinct = sorted(set(a for a in answers if 0 < len(a.encode()) <= 512))
def put(text):
    b = text.encode("utf-8")
    if len(b) > 512:
        return 0
    p = os.path.join(out, hashlib.sha1(b).hexdigest())
    if os.path.exists(p):
        return 0
    with open(p, "wb") as f:
        f.write(b)
    return 1
n1 = sum(put(a) for a in distinct)
rng = random.Random(12345)
shuffled = distinct[:]
rng.shuffle(shuffled)
n2 = sum(put(a + "\n" + b) for a, b in list(zip(distinct, shuffled))[:npairs])
print("fuzz: seed corpus %d distinct answers + %d pairs in %s" % (n1, n2, out))
PY

# ---- minimise ------------------------------------------------------------------------------------
# Campaigns grow the work corpus with near-duplicates of slow inputs (15,600 files after a day,
# where 4,500 keep every feature): libFuzzer then spends its time re-mutating them and runs a
# third as many inputs per second. Past FUZZ_MINIMIZE_OVER files (default 8000) it is merged down
# to a set with the same coverage first.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/fuzz/lsan.supp:print_suppressions=0}"
nwork="$(find "$work" -type f | wc -l)"
if [ "$nwork" -gt "${FUZZ_MINIMIZE_OVER:-8000}" ]; then
  rm -rf "$work.min"
  mkdir -p "$work.min"
  if "$build/fuzz/latex_fuzz" -merge=1 -timeout=1 -rss_limit_mb=2048 -max_len=512 \
      "$work.min" "$work" >"$build/fuzz.merge.log" 2>&1; then
    rm -rf "$work" && mv "$work.min" "$work"
    echo "fuzz: work corpus minimised from $nwork to $(find "$work" -type f | wc -l) files"
  else
    echo "fuzz: corpus minimisation failed (log: $build/fuzz.merge.log); keeping $nwork files"
    rm -rf "$work.min"
  fi
fi

# ---- run -----------------------------------------------------------------------------------------
# FUZZ_WORKERS processes (default 1) share the work corpus (libFuzzer reloads it as the others add
# to it); each has its own seed and log, and the run fails if any of them fails.
workers="${FUZZ_WORKERS:-1}"
echo "fuzz: running $workers latex_fuzz process(es) for ${secs}s (logs: $build/fuzz.*.log)"
pids=()
for w in $(seq 1 "$workers"); do
  "$build/fuzz/latex_fuzz" -max_total_time="$secs" -timeout=1 -rss_limit_mb=2048 -max_len=512 \
    -seed="$w" -print_final_stats=1 -artifact_prefix="$artifacts/" "$work" "$seed" \
    >"$build/fuzz.$w.log" 2>&1 &
  pids+=($!)
done
failed=0
total=0
for w in $(seq 1 "$workers"); do
  log="$build/fuzz.$w.log"
  set +e
  wait "${pids[$((w - 1))]}"
  rc=$?
  set -e
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -1 | grep -o '[0-9]*')"
  total=$((total + ${runs:-0}))
  tail -n 25 "$log"
  if [ "$rc" -ne 0 ]; then
    crash="$(grep -Eo "(crash|timeout|leak|oom|slow-unit)-[0-9a-f]+" "$log" | tail -1)"
    summary "FAIL - latex_fuzz worker $w exit status $rc after ${runs:-?} runs;" \
      "input: ${crash:+$artifacts/$crash}; log: $log"
    failed=1
  fi
done
[ "$failed" -eq 0 ] || exit 1
summary "PASS - $total inputs in ${secs}s over $workers process(es), coverage ${cov:-?}," \
  "no crashes (corpus: $work)"
