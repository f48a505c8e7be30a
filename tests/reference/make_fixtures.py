#!/usr/bin/python3
"""Makes the model-engine fixtures under tests/model/fixtures/<name>/ with the pure-PyTorch
reference (llama_reference.py):

  config.json, generation_config.json   HF-format configuration
  model.safetensors                      random weights, written by the reference's own writer
                                         (qwen2: two shards + model.safetensors.index.json)
  golden.json                            prompts (token ids), 64-token greedy generations, the
                                         smallest top-1/top-2 margin seen while generating
  golden.safetensors                     logits_<i> [T_i, V] float32 per prompt (fp32 forward),
                                         bf16_logits_<i> the same from a bfloat16 forward,
                                         f64_logits_<i> from a float64 forward of the same
                                         weights (float64: the tests measure the fp32 golden's
                                         rounding error against it and scale tolerances by it)

Weights are drawn wider than HF's 0.02 init so that logits are well separated (greedy decoding is
then insensitive to float rounding; the margin is checked). Run:
  /usr/bin/python3 tests/reference/make_fixtures.py [OUT_DIR]
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as ref  # noqa: E402

NEW_TOKENS = 64
PROMPT_LENGTHS = [1, 5, 12, 7, 20]
MIN_MARGIN = 2e-3

BASE = {
    "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": 256, "hidden_act": "silu",
    "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 2, "use_cache": True,
}

FIXTURES = {
    # LLaMA-2 style: multi-head attention, no scaling, fp32 weights.
    "llama2": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=256,
                   num_key_value_heads=4, rms_norm_eps=1e-5, rope_theta=10000.0, rope_scaling=None,
                   attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
                   torch_dtype="float32"),
    # LLaMA-3 style: GQA, theta 500000, llama3 rope scaling with a small original context so
    # all three frequency bands occur (head_dim 16: wavelengths 6.3 | 32.4 | 167 ... against the
    # band edges 64/4 = 16 and 64/1 = 64); bf16 weights; eos given as a list.
    "llama3": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=320,
                   num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=500000.0,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                   attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
                   torch_dtype="bfloat16", eos_token_id=[2, 3]),
    # Mistral: one KV head, explicit head_dim (!= hidden/heads), sliding window 16 (exercised by
    # the 64-token generations), bf16 weights.
    "mistral": dict(BASE, architectures=["MistralForCausalLM"], model_type="mistral", vocab_size=256,
                    num_key_value_heads=1, head_dim=32, rms_norm_eps=1e-5, rope_theta=10000.0,
                    sliding_window=16, tie_word_embeddings=False, torch_dtype="bfloat16"),
    # Qwen2: q/k/v bias, tied embeddings, theta 1e6, sharded checkpoint, fp32.
    "qwen2": dict(BASE, architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=288,
                  num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
                  use_sliding_window=False, sliding_window=None, max_window_layers=2,
                  tie_word_embeddings=True, torch_dtype="float32", bos_token_id=None),
}


def check_claims(name, cfg, weights):
    """Asserts that each fixture exercises what its comment in FIXTURES says it does."""
    ratio = cfg.num_attention_heads // cfg.num_key_value_heads
    if name == "llama2":
        assert ratio == 1, "llama2 is the multi-head (no GQA) fixture"
    else:
        assert ratio > 1, f"{name}: GQA ratio {ratio}, expected > 1"
    if name == "llama3":
        rs = cfg.rope_scaling
        ctx = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi * (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).double()
                                                      / cfg.head_dim))
        high = int((wavelen < ctx / rs["high_freq_factor"]).sum())
        low = int((wavelen > ctx / rs["low_freq_factor"]).sum())
        middle = len(wavelen) - high - low
        assert min(high, middle, low) >= 1, f"llama3 rope bands high/middle/low {high}/{middle}/{low}"
        # The middle band's pair really is blended (neither kept nor divided by the factor).
        scaled = ref.rope_inv_freq(cfg).double()
        plain = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2).double() / cfg.head_dim))
        r = plain / scaled
        assert ((r > 1.01) & (r < rs["factor"] * 0.99)).any(), f"no blended pair: {r.tolist()}"
    if name == "mistral":
        assert cfg.head_dim != cfg.hidden_size // cfg.num_attention_heads
        # Both the golden logits (longest prompt) and the generations go past the window.
        assert max(PROMPT_LENGTHS) > cfg.sliding_window, "the prompts never reach the window"
    if name == "qwen2":
        biases = [n for n in weights if n.endswith(".bias")]
        assert len(biases) == 3 * cfg.num_hidden_layers, biases
        for n in biases:
            assert float(weights[n].float().abs().min()) > 0 and float(weights[n].float().std()) > 0.1, n
        assert cfg.tie_word_embeddings and "lm_head.weight" not in weights


def make_weights(cfg, seed):
    g = torch.Generator().manual_seed(seed)

    def normal(*shape, std):
        return torch.randn(*shape, generator=g) * std

    h, I, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    # With tied embeddings the residual stream would make every token predict itself; stronger
    # layer outputs keep the generations varied.
    boost = 4.0 if cfg.tie_word_embeddings else 1.0
    w = {"model.embed_tokens.weight": normal(V, h, std=1.0)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1.0 + normal(h, std=0.2)
        w[p + "post_attention_layernorm.weight"] = 1.0 + normal(h, std=0.2)
        w[p + "self_attn.q_proj.weight"] = normal(q, h, std=0.25)
        w[p + "self_attn.k_proj.weight"] = normal(kv, h, std=0.25)
        w[p + "self_attn.v_proj.weight"] = normal(kv, h, std=0.15)
        w[p + "self_attn.o_proj.weight"] = normal(h, q, std=0.15 * boost)
        if cfg.kind == "qwen2" or cfg.attention_bias:
            w[p + "self_attn.q_proj.bias"] = normal(q, std=0.3)
            w[p + "self_attn.k_proj.bias"] = normal(kv, std=0.3)
            w[p + "self_attn.v_proj.bias"] = normal(kv, std=0.3)
        w[p + "mlp.gate_proj.weight"] = normal(I, h, std=0.15)
        w[p + "mlp.up_proj.weight"] = normal(I, h, std=0.15)
        w[p + "mlp.down_proj.weight"] = normal(h, I, std=0.1 * boost)
    w["model.norm.weight"] = 1.0 + normal(h, std=0.2)
    if not cfg.tie_word_embeddings:
        w["lm_head.weight"] = normal(V, h, std=0.3)
    return w


def prompts_for(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in PROMPT_LENGTHS]


def build(name, cfg_dict, out_root):
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    cfg_dict = {k: v for k, v in cfg_dict.items()}
    cfg = ref.Config(cfg_dict)
    store_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg_dict["torch_dtype"]]
    for seed in range(100):
        weights = {k: v.to(store_dtype) for k, v in make_weights(cfg, 1000 + seed).items()}
        model = ref.Model(cfg, weights, torch.float32)
        prompts = prompts_for(cfg.vocab_size, 7 + seed)
        gens, margin = model.greedy(prompts, NEW_TOKENS)
        # One by one must agree with the batch (left padding does not change the result).
        solo = [model.greedy([p], NEW_TOKENS)[0][0] for p in prompts]
        if margin >= MIN_MARGIN and solo == gens:
            break
        print(f"{name}: seed {seed} rejected (margin {margin:.2e}, solo==batch {solo == gens})")
    else:
        raise SystemExit(f"{name}: no seed with a safe greedy margin")
    check_claims(name, cfg, weights)

    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg_dict, f, indent=2)
        f.write("\n")
    gen_cfg = {k: cfg_dict[k] for k in ("bos_token_id", "eos_token_id") if cfg_dict.get(k) is not None}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(gen_cfg, f, indent=2)
        f.write("\n")
    if name == "qwen2":
        names = sorted(weights)
        half = len(names) // 2
        shards = [names[:half], names[half:]]
        weight_map = {}
        for i, part in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            ref.write_safetensors(os.path.join(out, fname), {n: weights[n] for n in part},
                                  {"format": "pt"})
            for n in part:
                weight_map[n] = fname
        total = sum(t.numel() * t.element_size() for t in weights.values())
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
            f.write("\n")
    else:
        ref.write_safetensors(os.path.join(out, "model.safetensors"), weights, {"format": "pt"})

    golden = {}
    bf16 = ref.Model(cfg, weights, torch.bfloat16)
    f64 = ref.Model(cfg, weights, torch.float64)
    with torch.no_grad():
        for i, p in enumerate(prompts):
            ids = torch.tensor([p])
            golden[f"logits_{i}"] = model.forward(ids)[0][0].contiguous()
            golden[f"bf16_logits_{i}"] = bf16.forward(ids)[0][0].float().contiguous()
            golden[f"f64_logits_{i}"] = f64.forward(ids)[0][0].contiguous()
    ref.write_safetensors(os.path.join(out, "golden.safetensors"), golden, {"format": "pt"})
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump({"prompts": prompts, "max_new_tokens": NEW_TOKENS, "generations": gens,
                   "min_margin": margin, "weights_seed": 1000 + seed}, f)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print(f"{name}: {size / 1024:.0f} KiB, min greedy margin {margin:.3f}")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "model", "fixtures")
    torch.set_num_threads(1)
    for name, cfg in FIXTURES.items():
        build(name, cfg, out_root)


if __name__ == "__main__":
    main()
