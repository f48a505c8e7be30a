// llama.cpp (through node-llama-cpp's prebuilt CPU binary) on GGUF files, for metamath's GGUF export
// parity test (tests/model/gguf_test.cpp):
//   node llama_cpp_parity.mjs JOBS.json > OUT.json
// JOBS.json: [{"gguf": PATH, "texts": [STRING...], "prompts": [[ID...]...], "max_tokens": N,
//              "top": K}]
// OUT.json, one object per job: {"gguf", "bos", "add_bos", "eos",
//   "tokens": [[ID...] per text]                (no BOS, special tokens not parsed),
//   "greedy": [[ID...] per prompt]              (max_tokens greedy tokens after the prompt),
//   "logprobs": [per prompt: [per position: [[ID, LOGPROB]...]]]  (the K most likely next
//                tokens after each prompt position, from llama.cpp's logits over the whole
//                vocabulary, normalized in double)}
// One context per model, one thread (ggml's threads spin at barriers, and two of them on a
// loaded 2-core machine stall each other), an F32 KV cache and no flash attention (llama.cpp's
// defaults are an F16 cache and "auto"), so nothing is rounded beyond what the weights' type
// itself implies. Run with UV_THREADPOOL_SIZE=1 on 2 cores.
import fs from "node:fs";
import {getLlama} from "node-llama-cpp";

const jobs = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});

async function nextTokenLogprobs(sequence, prompt, top) {
  await sequence.clearHistory();
  const input = prompt.map((t) => [t, {generateNext: {probabilities: true}}]);
  const out = await sequence.controlledEvaluate(input);
  // The addon's softmax sums the whole vocabulary in float32 (an error of up to ~1e-4 in the
  // normalizer for 128k tokens); renormalize in double: log p_i - log sum_j p_j.
  return out.map((o) => {
    const entries = [...o.next.probabilities.entries()];
    const logSum = Math.log(entries.reduce((a, [, p]) => a + p, 0));
    return entries.slice(0, top).map(([t, p]) => [t, Math.log(p) - logSum]);
  });
}

async function greedy(sequence, prompt, n) {
  await sequence.clearHistory();
  const got = [];
  for await (const t of sequence.evaluate(prompt, {temperature: 0, yieldEogToken: true})) {
    got.push(t);
    if (got.length >= n) break;
  }
  return got;
}

const results = [];
for (const job of jobs) {
  const model = await llama.loadModel({modelPath: job.gguf, gpuLayers: 0});
  const r = {
    gguf: job.gguf,
    bos: model.tokens.bos,
    eos: model.tokens.eos,
    add_bos: model.tokens.shouldPrependBosToken,
    tokens: (job.texts ?? []).map((t) => Array.from(model.tokenize(t, false))),
    greedy: [],
    logprobs: [],
  };
  if ((job.prompts ?? []).length > 0) {
    // One small context per model (the prompts are short), its sequence cleared between uses.
    const longest = Math.max(...job.prompts.map((p) => p.length)) + (job.max_tokens ?? 8);
    const context = await model.createContext({
      contextSize: Math.max(64, longest),
      batchSize: Math.max(64, longest),
      sequences: 1,
      flashAttention: false,
      experimentalKvCacheKeyType: "F32",
      experimentalKvCacheValueType: "F32",
      threads: 1,  // ggml threads spin at barriers: two on a shared 2-core box can stall
    });
    const sequence = context.getSequence();
    for (const p of job.prompts) {
      r.greedy.push(job.max_tokens > 0 ? await greedy(sequence, p, job.max_tokens) : []);
      r.logprobs.push(await nextTokenLogprobs(sequence, p, job.top ?? 8));
    }
    await context.dispose();
  }
  results.push(r);
  await model.dispose();
}
process.stdout.write(JSON.stringify(results));
await llama.dispose();
