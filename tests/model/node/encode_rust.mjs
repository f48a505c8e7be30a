// Reference token ids and decoded text from the Hugging Face `tokenizers` library itself (the Rust
// crate, through its official npm binding `tokenizers`, pinned in package.json), for metamath's
// tokenizer parity tests.
//
//   node encode_rust.mjs <tokenizer.json> <input.jsonl> <output.jsonl>
//   node encode_rust.mjs --jobs <jobs.jsonl>     (one {"tokenizer", "input", "output"} per line)
//
// Each input line is {"text": "..."} or {"ids": [...]}; each output line is {"ids": [...],
// "decoded": "..."} (encode with add_special_tokens=false, then decode with skip_special_tokens=
// false) or {"decoded": "..."} (decode of the given ids).
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { Tokenizer } = require("tokenizers");

function readJsonl(path) {
  const out = [];
  readFileSync(path, "utf8")
    .split("\n")
    .forEach((line, i) => {
      if (line.trim() === "") return;
      try {
        out.push(JSON.parse(line));
      } catch (e) {
        throw new Error(`${path}:${i + 1}: not JSON: ${e.message}`);
      }
    });
  return out;
}

const loaded = new Map();  // tokenizer.json path -> Tokenizer (jobs often share one)
function load(path) {
  if (!loaded.has(path)) {
    try {
      loaded.set(path, Tokenizer.fromFile(path));
    } catch (e) {
      throw new Error(`${path}: ${e.message ?? e}`);
    }
  }
  return loaded.get(path);
}

async function run({ tokenizer, input, output }) {
  const tok = load(tokenizer);
  const recs = readJsonl(input);
  recs.forEach((rec, i) => {
    if (typeof rec.text !== "string" && !Array.isArray(rec.ids))
      throw new Error(`${input}:${i + 1}: expected {"text": string} or {"ids": [...]}`);
  });
  const texts = recs.filter((r) => typeof r.text === "string").map((r) => r.text);
  const encodings = await tok.encodeBatch(texts, { addSpecialTokens: false });
  const textIds = encodings.map((e) => e.getIds());
  const toDecode = [];
  let t = 0;
  for (const rec of recs) toDecode.push(typeof rec.text === "string" ? textIds[t++] : rec.ids);
  const decoded = await tok.decodeBatch(toDecode, false);
  t = 0;
  const out = recs.map((rec, i) =>
    typeof rec.text === "string" ? { ids: textIds[t++], decoded: decoded[i] } : { decoded: decoded[i] });
  writeFileSync(output, out.map((r) => JSON.stringify(r)).join("\n") + (out.length ? "\n" : ""));
}

const args = process.argv.slice(2);
try {
  if (args[0] === "--jobs" && args.length === 2) {
    for (const job of readJsonl(args[1])) await run(job);
  } else if (args.length === 3) {
    await run({ tokenizer: args[0], input: args[1], output: args[2] });
  } else {
    console.error("usage: node encode_rust.mjs <tokenizer.json> <input.jsonl> <output.jsonl>\n" +
                  "       node encode_rust.mjs --jobs <jobs.jsonl>");
    process.exit(2);
  }
} catch (e) {
  console.error(`encode_rust: ${e.message ?? e}`);
  process.exit(1);
}
