// llama.cpp side of bench/decode_bench: greedy generation on a GGUF (the bench model exported by
// `metamath export --format gguf`) through node-llama-cpp's prebuilt CPU binary.
//
//   UV_THREADPOOL_SIZE=1 node decode_llama_cpp.mjs --gguf FILE --prompts FILE --new-tokens N
//                                                  --threads N [--node-modules DIR]
//
// node-llama-cpp is the one pinned in tests/model/llama_cpp (its node_modules, or --node-modules DIR).
//
// A batch of B prompts is B sequences of one context: node-llama-cpp gathers what the sequences
// queue at the same time into one llama_decode call, so the prefill is one batch (all prompts)
// and each later step decodes one token of every sequence together, as the other sides do.
// Prefill = until every sequence has its first token; decode = the rest. A 2-token warm-up
// generation runs first (in its own context). The KV cache is F32 with flash attention off, as in
// the parity test, so the 16-bit rows measure 16-bit weights, not a 16-bit cache.
// Prints one JSON object: {"side", "runs": [{"prefill_s", "decode_s"}], "peak_rss_bytes",
// "generated"}.
import fs from "node:fs";
import path from "node:path";
import {fileURLToPath, pathToFileURL} from "node:url";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i < 0) {
    if (fallback === undefined) throw new Error(`missing ${name}`);
    return fallback;
  }
  return process.argv[i + 1];
}
const gguf = arg("--gguf");
const prompts = JSON.parse(fs.readFileSync(arg("--prompts"), "utf8"));
const newTokens = Number(arg("--new-tokens"));
const threads = Number(arg("--threads", "2"));
const here = path.dirname(fileURLToPath(import.meta.url));
const modules = arg("--node-modules", path.join(here, "..", "..", "tests", "model", "llama_cpp", "node_modules"));
const {getLlama} = await import(pathToFileURL(path.join(modules, "node-llama-cpp", "dist", "index.js")).href);

const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath: gguf, gpuLayers: 0});

async function generate(n) {
  const longest = Math.max(...prompts.map((p) => p.length));
  const context = await model.createContext({
    contextSize: prompts.length * (longest + n + 8),
    batchSize: Math.max(512, prompts.reduce((a, p) => a + p.length, 0)),
    sequences: prompts.length,
    flashAttention: false,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
    threads,
  });
  const t0 = performance.now();
  let firstDone = 0, tFirst = 0;
  const generated = await Promise.all(prompts.map(async (p) => {
    const sequence = context.getSequence();
    const got = [];
    for await (const t of sequence.evaluate(p, {temperature: 0, yieldEogToken: true})) {
      got.push(t);
      if (got.length === 1 && ++firstDone === prompts.length) tFirst = performance.now();
      if (got.length >= n) break;
    }
    return got;
  }));
  const t1 = performance.now();
  await context.dispose();
  return {prefill_s: (tFirst - t0) / 1e3, decode_s: (t1 - tFirst) / 1e3, generated};
}

await generate(2);  // warm-up
const r = await generate(newTokens);
process.stdout.write(JSON.stringify({
  side: "llama.cpp",
  runs: [{prefill_s: r.prefill_s, decode_s: r.decode_s}],
  peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  generated: r.generated,
}) + "\n");
await model.dispose();
await llama.dispose();
