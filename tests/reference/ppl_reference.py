#!/usr/bin/python3
"""Reference per-example losses for `metamath ppl` (tests/analysis/ppl_test.cpp), with plain PyTorch,
the pure-PyTorch model of llama_reference.py and Debian's python3-sentencepiece: independent of the
C++ tokenizer, batching and model.

    /usr/bin/python3 tests/reference/ppl_reference.py JOBS.json OUT.json

JOBS.json is a list of jobs, each {"model": DIR} plus either
  "examples": [{"ids": [...], "prompt_len": P}, ...]        token ids given, or
  "data": FILE.jsonl, "tokenizer_model": tokenizer.model, "max_len": N,
  "query_field": "query", "response_field": "response",
  "prompt_style": "official" | "plain"                      records tokenised here.

Tokenisation (MetaMath's training rule, as src/train/sft_data.h states it): the prompt is the
Alpaca training prompt of the query: "plain" puts the whole query in the instruction; "official"
(the default, as MetaMath's train_math.py) takes the query's first line as the instruction and the
lines after it, if any text follows the first newline, as the input of Alpaca's prompt with input.
ids = [BOS] + encode(prompt + response) + [EOS], cut to
max_len; the first len([BOS] + encode(prompt)) tokens are the prompt; an example whose prompt
fills max_len is dropped. The loss of an example is the sum over positions t >= prompt_len of
-log softmax(logits[t - 1])[ids[t]], each example run alone (no padding).

OUT.json: one entry per job: {"nll_sum": [...], "f64_nll_sum": [...], "tokens": [...]} (float32
model, and the same float32 weights run in float64), plus "ids" and "prompt_len" for text jobs
(null entries for dropped records).
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as ref  # noqa: E402

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately "
          "completes the request.\n\n### Instruction:\n{query}\n\n### Response:")
ALPACA_INPUT = ("Below is an instruction that describes a task, paired with an input that provides "
                "further context. Write a response that appropriately completes the request.\n\n"
                "### Instruction:\n{query}\n\n### Input:\n{input}\n\n### Response:")


def training_prompt(query, style):
    if style == "plain":
        return ALPACA.format(query=query)
    assert style == "official", style
    first, _, rest = query.partition("\n")
    if rest == "":
        return ALPACA.format(query=first)
    return ALPACA_INPUT.format(query=first, input=rest)


def tokenize(job):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=job["tokenizer_model"])
    out = []
    with open(job["data"], encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            prompt = training_prompt(rec[job.get("query_field", "query")],
                                     job.get("prompt_style", "official"))
            ids = [sp.bos_id()] + sp.encode(prompt + rec[job.get("response_field", "response")])
            ids.append(sp.eos_id())
            plen = 1 + len(sp.encode(prompt))
            ids = ids[: job["max_len"]]
            plen = min(plen, len(ids))
            out.append(None if plen >= len(ids) else {"ids": ids, "prompt_len": plen})
    return out


@torch.no_grad()
def nll_sum(model, ex):
    ids = torch.tensor([ex["ids"]], dtype=torch.long)
    logits, _ = model.forward(ids)
    logp = torch.log_softmax(logits[0], dim=-1)
    p = max(ex["prompt_len"], 1)
    tgt = ids[0, p:]
    return float(-logp[p - 1:-1].gather(1, tgt[:, None]).double().sum()), len(tgt)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    jobs = json.load(open(sys.argv[1]))
    results = []
    for job in jobs:
        cfg, weights = ref.load_config(job["model"]), ref.read_checkpoint(job["model"])
        m32 = ref.Model(cfg, weights, torch.float32)
        m64 = ref.Model(cfg, weights, torch.float64)
        examples = job["examples"] if "examples" in job else tokenize(job)
        r = {"nll_sum": [], "f64_nll_sum": [], "tokens": []}
        for ex in examples:
            if ex is None:
                for k in r:
                    r[k].append(None)
                continue
            s32, n = nll_sum(m32, ex)
            s64, _ = nll_sum(m64, ex)
            r["nll_sum"].append(s32)
            r["f64_nll_sum"].append(s64)
            r["tokens"].append(n)
        if "examples" not in job:
            r["ids"] = [ex and ex["ids"] for ex in examples]
            r["prompt_len"] = [ex and ex["prompt_len"] for ex in examples]
        results.append(r)
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
