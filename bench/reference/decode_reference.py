#!/usr/bin/python3
"""PyTorch reference for bench/decode_bench: Hugging Face-style greedy generation with a KV cache
over the same safetensors weights as the C++ engine.

The model is tests/reference/llama_reference.py (pure PyTorch, HF modeling semantics; the source
of the golden files in tests/model). The loop below is what transformers' greedy `generate` does
with `past_key_values` (the greedy_search of transformers 4.3x, the era of the MetaMath code):

- prefill the whole left-padded batch in one forward pass (logits for every position, as HF
  computed them then), take the last position's logits, argmax;
- then one token per step: append the token to input_ids, append a 1 to the attention mask,
  position_ids = cumsum(mask) - 1 at the new position, forward the new token against the
  per-layer K/V caches, which grow by torch.cat on the sequence dimension every step.

No EOS stop: every sequence makes exactly --new-tokens tokens. Prompts come from --prompts (a JSON
file holding a list of token-id lists, written by decode_bench so both sides use the same ones);
without it, random prompts are drawn with --seed.

Prints one JSON object on stdout: prefill/decode/total seconds per repeat, the best and median
rates, peak RSS (resource.getrusage, KiB -> bytes) and the generated ids of the last repeat.

Run with Debian's interpreter: /usr/bin/python3 bench/reference/decode_reference.py --model DIR
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))

import llama_reference  # noqa: E402  (path set above)

DTYPES = {"f32": torch.float32, "fp32": torch.float32, "float32": torch.float32,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


@torch.no_grad()
def hf_greedy(model, prompts, new_tokens):
    """Returns (generated ids [B, new_tokens] as lists, prefill seconds, decode seconds)."""
    B = len(prompts)
    T = max(len(p) for p in prompts)
    input_ids = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, p in enumerate(prompts):
        input_ids[b, T - len(p):] = torch.tensor(p, dtype=torch.long)
        mask[b, T - len(p):] = 1
    # HF: position_ids = cumsum(mask) - 1, padding positions set to 1.
    pos = mask.cumsum(-1) - 1
    pos.masked_fill_(mask == 0, 1)

    t0 = time.perf_counter()
    cache = [None] * model.cfg.num_hidden_layers
    logits, cache = model.forward(input_ids, mask, pos, cache)
    nxt = logits[:, -1, :].argmax(-1)
    input_ids = torch.cat([input_ids, nxt[:, None]], dim=-1)
    t1 = time.perf_counter()
    for _ in range(new_tokens - 1):
        mask = torch.cat([mask, mask.new_ones((B, 1))], dim=-1)
        pos = (mask.cumsum(-1) - 1)[:, -1:]
        logits, cache = model.forward(nxt[:, None], mask, pos, cache)
        nxt = logits[:, -1, :].argmax(-1)
        input_ids = torch.cat([input_ids, nxt[:, None]], dim=-1)
    t2 = time.perf_counter()
    return input_ids[:, T:].tolist(), t1 - t0, t2 - t1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="HF-format model folder")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    ap.add_argument("--prompts", help="JSON file: list of token-id lists")
    ap.add_argument("--batch", type=int, default=1, help="random prompts when --prompts is absent")
    ap.add_argument("--prompt-len", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup-tokens", type=int, default=2,
                    help="untimed short generation first (allocator and thread pool warm-up)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.new_tokens < 1:
        ap.error("--new-tokens must be >= 1")

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    dtype = DTYPES[args.dtype]
    t0 = time.perf_counter()
    model = llama_reference.Model.load(args.model, dtype)
    load_s = time.perf_counter() - t0

    if args.prompts:
        with open(args.prompts) as f:
            prompts = json.load(f)
    else:
        g = torch.Generator().manual_seed(args.seed)
        prompts = torch.randint(0, model.cfg.vocab_size, (args.batch, args.prompt_len),
                                generator=g).tolist()
    B = len(prompts)

    if args.warmup_tokens > 0:
        hf_greedy(model, prompts, args.warmup_tokens)
    runs = []
    out = None
    for _ in range(args.repeats):
        out, pre, dec = hf_greedy(model, prompts, args.new_tokens)
        runs.append({"prefill_s": pre, "decode_s": dec, "total_s": pre + dec})
    decode_rates = [B * (args.new_tokens - 1) / r["decode_s"] for r in runs if r["decode_s"] > 0]
    total_rates = [B * args.new_tokens / r["total_s"] for r in runs]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "side": "pytorch-reference",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "batch": B,
        "prompt_len": max(len(p) for p in prompts),
        "new_tokens": args.new_tokens,
        "load_s": load_s,
        "runs": runs,
        "decode_tok_s_best": max(decode_rates) if decode_rates else 0.0,
        "decode_tok_s_median": statistics.median(decode_rates) if decode_rates else 0.0,
        "total_tok_s_best": max(total_rates),
        "total_tok_s_median": statistics.median(total_rates),
        "peak_rss_bytes": peak_kib * 1024,
        "generated": out,
    }))


if __name__ == "__main__":
    main()
