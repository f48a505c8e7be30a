// Reference token ids from @huggingface/tokenizers (pure JavaScript, written by Hugging Face), used by
// metamath's tokenizer parity tests as an independent implementation.
//
//   node encode.mjs <tokenizer.json> <tokenizer_config.json> [input.jsonl] [--decode]
//
// Reads JSON Lines {"text": "..."} (from the file, or stdin) and prints one JSON line per input:
// {"ids": [...]} with add_special_tokens=false; with --decode also {"decoded": "..."}.
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const withDecode = process.argv.includes("--decode");
if (args.length < 2) {
  console.error("usage: node encode.mjs <tokenizer.json> <tokenizer_config.json> [input.jsonl] [--decode]");
  process.exit(2);
}
const tokenizerJson = JSON.parse(readFileSync(args[0], "utf8"));
const tokenizerConfig = JSON.parse(readFileSync(args[1], "utf8"));
const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);

const input = readFileSync(args.length > 2 ? args[2] : 0, "utf8");
const out = [];
let lineNo = 0;
for (const line of input.split("\n")) {
  lineNo++;
  if (line.trim() === "") continue;
  let rec;
  try {
    rec = JSON.parse(line);
  } catch (e) {
    console.error(`input line ${lineNo}: not JSON: ${e.message}`);
    process.exit(1);
  }
  if (typeof rec.text !== "string") {
    console.error(`input line ${lineNo}: field "text" missing or not a string`);
    process.exit(1);
  }
  const ids = tokenizer.encode(rec.text, { add_special_tokens: false }).ids;
  const res = { ids };
  if (withDecode) res.decoded = ids.length ? tokenizer.decode(ids, { skip_special_tokens: false }) : "";
  out.push(JSON.stringify(res));
}
process.stdout.write(out.length ? out.join("\n") + "\n" : "");
