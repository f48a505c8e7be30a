#!/usr/bin/python3
"""Reference training step for bench/train_bench.cpp: the pure-PyTorch LLaMA model of
tests/reference/llama_reference.py with trainable weights, one micro-batch per step:

  zero_grad -> forward (full logits) -> cross-entropy sum / label tokens -> backward ->
  clip_grad_norm_(1.0) -> torch.optim.AdamW (lr 2e-5, PyTorch defaults) step

bf16: the model runs in bfloat16 on casts of the fp32 master weights (the reference Model casts
its weights with .to(dtype), which autograd records), as `metamath train --precision bf16`.

  train_bench_reference.py MODEL_DIR BATCH.safetensors DTYPE(f32|bf16) WARMUP STEPS THREADS

Prints one JSON line: {"step_s": [...], "tokens": N, "peak_rss_kb": K, "loss": L}.
"""
import json
import os
import resource
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "reference"))
import llama_reference as ref  # noqa: E402


def main():
    model_dir, batch_file, dtype, warmup, steps, threads = sys.argv[1:7]
    torch.set_num_threads(int(threads))
    cfg = ref.load_config(model_dir)
    weights = {n: t.clone().requires_grad_(True) for n, t in ref.read_checkpoint(model_dir).items()}
    batch = ref.read_safetensors(batch_file)
    ids, tg = batch["input_ids"].long(), batch["targets"].long()
    n_label = int((tg != -100).sum())
    params = list(weights.values())
    opt = torch.optim.AdamW(params, lr=2e-5)
    times, loss = [], None
    for i in range(int(warmup) + int(steps)):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        model = ref.Model(cfg, weights, torch.bfloat16 if dtype == "bf16" else torch.float32)
        logits, _ = model.forward(ids)
        V = logits.shape[-1]
        l = torch.nn.functional.cross_entropy(logits.float().reshape(-1, V), tg.reshape(-1),
                                              ignore_index=-100, reduction="sum") / n_label
        l.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        loss = float(l)
        if i >= int(warmup):
            times.append(time.perf_counter() - t0)
    print(json.dumps({"step_s": times, "tokens": int(ids.numel()), "loss": loss,
                      "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


if __name__ == "__main__":
    main()
