#!/usr/bin/python3
"""Golden files for the training tests (tests/train/), computed with plain PyTorch and the
pure-PyTorch model of llama_reference.py (independent of the C++ code):

For each tiny fixture under tests/train/fixtures/<name>/ (random HF-format model, written here):
  golden.json         hyperparameters, the micro-batches (token ids and targets), per-step losses
                      and learning rates
  golden.safetensors  grad.<param>         gradient of the global-batch loss at the initial weights
                      step10.<param>       weights after 10 AdamW steps (cosine schedule, warmup,
                                           clipping, weight decay) on that global batch
                      lora_init.<peft>     LoRA A/B initial values (B non-zero so every grad is
                                           non-trivial)
                      lora_grad.<peft>     their gradients; lora_step10.<peft> after 10 steps
                      f64.<any of the above>  the same computed in float64 from the same float32
                                           start: the float32 run's own rounding error is
                                           measured against it, and the tests' tolerances are
                                           multiples of it (see tests/train/parity_test.cpp)
                      mb.grad.<param>, mb.step10.<param> (and their f64. twins): the same full
                                           fine-tune under the micro-batch loss reduction
  golden.json also carries f64_loss, f64_losses, f64_lora_loss, f64_lora_losses, and mb_loss,
  mb_losses, mb_grad_norms, f64_mb_loss, f64_mb_losses.

The loss of a global batch ("token" reduction) is sum over micro-batches of sum(-log p(target))
divided by the number of target tokens of the whole global batch (targets = next token, -100
where ignored). Under the "micro-batch" reduction (Hugging Face Trainer with gradient accumulation)
each micro-batch's loss is its own token mean, divided by the number of micro-batches; the two
micro-batches here hold 9 and 4 target tokens, so the two reductions differ. Gradients are
accumulated over micro-batches, clipped with torch.nn.utils.clip_grad_norm_, and applied with
torch.optim.AdamW (foreach=False) under a LambdaLR with Hugging Face's cosine-with-warmup formula.

Run: /usr/bin/python3 tests/reference/train_reference.py [OUT_DIR]
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_reference as ref  # noqa: E402

STEPS = 10
HP = {"lr": 1e-3, "warmup_ratio": 0.2, "weight_decay": 0.1, "max_grad_norm": 0.5,
      "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "steps": STEPS}
LORA = {"r": 4, "alpha": 8.0, "targets": ["q_proj", "v_proj", "down_proj"]}

BASE = {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "max_position_embeddings": 64, "hidden_act": "silu",
        "initializer_range": 0.02, "bos_token_id": 1, "eos_token_id": 2, "use_cache": True,
        "torch_dtype": "float32", "rms_norm_eps": 1e-5}
FIXTURES = {
    # GQA, untied lm_head.
    "llama": dict(BASE, architectures=["LlamaForCausalLM"], model_type="llama", vocab_size=64,
                  num_key_value_heads=2, rope_theta=10000.0, rope_scaling=None,
                  attention_bias=False, mlp_bias=False, tie_word_embeddings=False),
    # q/k/v bias, tied embeddings (the embedding gets gradient from both ends).
    "qwen2": dict(BASE, architectures=["Qwen2ForCausalLM"], model_type="qwen2", vocab_size=72,
                  num_key_value_heads=2, rope_theta=1000000.0, use_sliding_window=False,
                  sliding_window=None, max_window_layers=2, tie_word_embeddings=True),
}


def param_names(cfg):
    names = ["model.embed_tokens.weight"]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        names += [p + "input_layernorm.weight", p + "self_attn.q_proj.weight",
                  p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight",
                  p + "self_attn.o_proj.weight"]
        if cfg["model_type"] == "qwen2":
            names += [p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias",
                      p + "self_attn.v_proj.bias"]
        names += [p + "post_attention_layernorm.weight", p + "mlp.gate_proj.weight",
                  p + "mlp.up_proj.weight", p + "mlp.down_proj.weight"]
    names.append("model.norm.weight")
    if not cfg["tie_word_embeddings"]:
        names.append("lm_head.weight")
    return names


def random_weights(cfg, gen):
    h, I = cfg["hidden_size"], cfg["intermediate_size"]
    d = h // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * d, cfg["num_key_value_heads"] * d
    shapes = {"embed_tokens": (cfg["vocab_size"], h), "q_proj": (q, h), "k_proj": (kv, h),
              "v_proj": (kv, h), "o_proj": (h, q), "gate_proj": (I, h), "up_proj": (I, h),
              "down_proj": (h, I), "lm_head": (cfg["vocab_size"], h)}
    w = {}
    for n in param_names(cfg):
        if "norm" in n:
            w[n] = 1.0 + 0.1 * torch.randn(h, generator=gen)
            continue
        mod = n.split(".")[-2]
        if n.endswith(".bias"):
            w[n] = 0.05 * torch.randn(shapes[mod][0], generator=gen)
        else:
            w[n] = 0.08 * torch.randn(*shapes[mod], generator=gen)
    return w


def make_micro_batches(cfg, gen):
    """Two micro-batches: [2 rows, right-padded] and [1 row]; targets ignore the 'prompt' part."""
    V = cfg["vocab_size"]
    rows = [(9, 4), (6, 2), (7, 3)]  # (length, prompt length)
    seqs = [[int(x) for x in torch.randint(3, V, (n,), generator=gen)] for n, _ in rows]

    def batch(idx):
        T = max(rows[i][0] for i in idx)
        ids = torch.zeros(len(idx), T, dtype=torch.long)
        tg = torch.full((len(idx), T), -100, dtype=torch.long)
        for r, i in enumerate(idx):
            n, p = rows[i]
            ids[r, :n] = torch.tensor(seqs[i])
            for t in range(max(p, 1), n):
                tg[r, t - 1] = seqs[i][t]
        return ids, tg

    return [batch([0, 1]), batch([2])]


class LoraModel(ref.Model):
    def __init__(self, cfg, weights, lora, scale, dtype=torch.float32):
        super().__init__(cfg, weights, dtype)
        self.lora = lora
        self.scale = scale

    def _lin(self, x, name):
        y = super()._lin(x, name)
        key = "base_model.model." + name
        if key + ".lora_A.weight" in self.lora:
            a = self.lora[key + ".lora_A.weight"]
            b = self.lora[key + ".lora_B.weight"]
            y = y + torch.nn.functional.linear(torch.nn.functional.linear(x, a), b) * self.scale
        return y


def loss_sum(model, ids, tg):
    logits, _ = model.forward(ids)
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tg.reshape(-1),
                                             ignore_index=-100, reduction="sum")


def cosine_lambda(total, warmup):
    def f(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    return f


def divisors(micro, reduction):
    """What each micro-batch's loss sum is divided by in the step's loss."""
    counts = [int((tg != -100).sum()) for _, tg in micro]
    if reduction == "token":
        return [sum(counts)] * len(micro)
    assert reduction == "micro-batch"
    return [n * len(micro) for n in counts]


def step_loss(sums, div, reduction):
    """The step's loss from the micro-batches' loss sums (the token mean divides once, at the end)."""
    if reduction == "token":
        return sum(sums) / div[0]
    return sum(s / d for s, d in zip(sums, div))


def train(make_model, params, micro, reduction="token"):
    n_tokens = sum(int((tg != -100).sum()) for _, tg in micro)
    div = divisors(micro, reduction)
    model = make_model()
    total = step_loss([loss_sum(model, ids, tg) for ids, tg in micro], div, reduction)
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in params.items()}
    first_loss = float(total)
    for p in params.values():
        p.grad = None
    opt = torch.optim.AdamW(list(params.values()), lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]),
                            eps=HP["eps"], weight_decay=HP["weight_decay"], foreach=False)
    warmup = math.ceil(STEPS * HP["warmup_ratio"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(STEPS, warmup))
    losses, lrs, norms = [], [], []
    for _ in range(STEPS):
        opt.zero_grad()
        lrs.append(opt.param_groups[0]["lr"])
        model = make_model()
        sums = []
        for (ids, tg), d in zip(micro, div):
            ls = loss_sum(model, ids, tg)
            (ls / d).backward()
            sums.append(float(ls))
        losses.append(step_loss(sums, div, reduction))
        norms.append(float(torch.nn.utils.clip_grad_norm_(list(params.values()),
                                                          HP["max_grad_norm"])))
        opt.step()
        sched.step()
    after = {n: p.detach().clone() for n, p in params.items()}
    return first_loss, grads, after, losses, lrs, norms, n_tokens


def check_claims(name, cfg, init, golden):
    """Asserts what FIXTURES' comments say each fixture exercises, and that no gradient the tests
    compare is trivially zero."""
    assert cfg["num_attention_heads"] // cfg["num_key_value_heads"] > 1, f"{name}: no GQA"
    if name == "qwen2":
        assert cfg["tie_word_embeddings"] and "lm_head.weight" not in init
        biases = [n for n in init if n.endswith(".bias")]
        assert len(biases) == 3 * cfg["num_hidden_layers"], biases
        assert all(float(init[n].abs().min()) > 0 for n in biases), "a zero bias entry"
    else:
        assert "lm_head.weight" in init
    for n, t in golden.items():
        if "grad." in n:
            assert float(t.abs().max()) > 0, f"{name}: {n} is all zero"


def make_fixture(out_root, name, cfg):
    out = os.path.join(out_root, name)
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(1234 + len(name))
    init = random_weights(cfg, gen)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]}, f)
    ref.write_safetensors(os.path.join(out, "model.safetensors"), init)
    micro = make_micro_batches(cfg, gen)
    rcfg = ref.Config(cfg)
    golden = {}

    # Full fine-tune, in float32 and (for the tolerances) in float64.
    params = {n: t.clone().requires_grad_(True) for n, t in init.items()}
    loss, grads, after, losses, lrs, norms, n_tok = train(lambda: ref.Model(rcfg, params), params,
                                                          micro)
    for n in params:
        golden["grad." + n] = grads[n]
        golden["step10." + n] = after[n]
    p64 = {n: t.double().requires_grad_(True) for n, t in init.items()}
    loss64, grads64, after64, losses64, _, _, _ = train(
        lambda: ref.Model(rcfg, p64, torch.float64), p64, micro)
    for n in p64:
        golden["f64.grad." + n] = grads64[n]
        golden["f64.step10." + n] = after64[n]
    meta = {"hyperparameters": HP, "lora": LORA, "label_tokens": n_tok, "loss": loss,
            "losses": losses, "lrs": lrs, "grad_norms": norms, "f64_loss": loss64,
            "f64_losses": losses64,
            "micro_batches": [{"input_ids": ids.tolist(), "targets": tg.tolist()}
                              for ids, tg in micro]}

    # The same full fine-tune under the micro-batch reduction.
    pmb = {n: t.clone().requires_grad_(True) for n, t in init.items()}
    mb_loss, mb_grads, mb_after, mb_losses, _, mb_norms, _ = train(
        lambda: ref.Model(rcfg, pmb), pmb, micro, "micro-batch")
    pmb64 = {n: t.double().requires_grad_(True) for n, t in init.items()}
    mb_loss64, mb_grads64, mb_after64, mb_losses64, _, _, _ = train(
        lambda: ref.Model(rcfg, pmb64, torch.float64), pmb64, micro, "micro-batch")
    for n in pmb:
        golden["mb.grad." + n] = mb_grads[n]
        golden["mb.step10." + n] = mb_after[n]
        golden["f64.mb.grad." + n] = mb_grads64[n]
        golden["f64.mb.step10." + n] = mb_after64[n]

    # LoRA on q, v and down projections; base frozen.
    base = {n: t.clone() for n, t in init.items()}
    lora = {}
    scale = LORA["alpha"] / LORA["r"]
    for i in range(cfg["num_hidden_layers"]):
        for mod in LORA["targets"]:
            part = "self_attn" if mod in ("q_proj", "k_proj", "v_proj", "o_proj") else "mlp"
            key = f"base_model.model.model.layers.{i}.{part}.{mod}"
            w = base[f"model.layers.{i}.{part}.{mod}.weight"]
            lora[key + ".lora_A.weight"] = 0.1 * torch.randn(LORA["r"], w.shape[1], generator=gen)
            lora[key + ".lora_B.weight"] = 0.1 * torch.randn(w.shape[0], LORA["r"], generator=gen)
    for n, t in lora.items():
        golden["lora_init." + n] = t.clone()
    lparams = {n: t.clone().requires_grad_(True) for n, t in lora.items()}
    lloss, lgrads, lafter, llosses, llrs, lnorms, _ = train(
        lambda: LoraModel(rcfg, base, lparams, scale), lparams, micro)
    for n in lparams:
        golden["lora_grad." + n] = lgrads[n]
        golden["lora_step10." + n] = lafter[n]
    base64 = {n: t.double() for n, t in base.items()}
    lp64 = {n: t.double().requires_grad_(True) for n, t in lora.items()}
    lloss64, lgrads64, lafter64, llosses64, _, _, _ = train(
        lambda: LoraModel(rcfg, base64, lp64, scale, torch.float64), lp64, micro)
    for n in lp64:
        golden["f64.lora_grad." + n] = lgrads64[n]
        golden["f64.lora_step10." + n] = lafter64[n]
    meta.update({"lora_loss": lloss, "lora_losses": llosses, "lora_grad_norms": lnorms,
                 "f64_lora_loss": lloss64, "f64_lora_losses": llosses64})
    meta.update({"mb_loss": mb_loss, "mb_losses": mb_losses, "mb_grad_norms": mb_norms,
                 "f64_mb_loss": mb_loss64, "f64_mb_losses": mb_losses64})
    check_claims(name, cfg, init, golden)
    ref.write_safetensors(os.path.join(out, "golden.safetensors"), golden)
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{name}: loss {loss:.6f}, grad norms {[round(x, 4) for x in norms]}, "
          f"lora loss {lloss:.6f}, lora grad norms {[round(x, 4) for x in lnorms]}, "
          f"micro-batch reduction loss {mb_loss:.6f}")


def main():
    torch.manual_seed(0)
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "train", "fixtures")
    for name, cfg in FIXTURES.items():
        make_fixture(out, name, cfg)


if __name__ == "__main__":
    main()
