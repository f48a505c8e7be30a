#!/usr/bin/python3
"""Pure-PyTorch reference of the LLaMA-family decoder (LLaMA-2, LLaMA-3 with llama3 rope scaling,
Mistral, Qwen2), written to follow Hugging Face transformers' modeling semantics:

- RMSNorm computed in float32, cast back, then multiplied by the weight;
- float64 weights (dtype=torch.float64) keep everything after the rotary angles in float64
  (RMSNorm, softmax, logits): the tests measure the float32 run's rounding against it;
- rotate-half rotary embeddings, inv_freq = 1 / theta^(2i/d) (float32), optional "linear" or
  "llama3" scaling; cos/sin computed in float32 and cast to the activation dtype;
- grouped-query attention by repeating K/V heads; eager attention: (q k^T) * d^-0.5, additive
  mask of finfo.min, softmax in float32, cast back, times v;
- Qwen2: bias on q/k/v projections; LLaMA attention_bias: bias on q/k/v/o; mlp_bias;
- Mistral sliding window: a query at cache index i sees keys j with i - j < sliding_window;
- tie_word_embeddings: lm_head is the embedding matrix.

It reads an HF-format folder (config.json + model.safetensors or a sharded index) through the
small safetensors reader below (no `safetensors` or `transformers` package needed) and has a
KV-cache greedy generation loop. Runs with Debian's /usr/bin/python3 (python3-torch).

This file is independent of the C++ implementation: it is the source of the golden files.
"""
import json
import math
import os
import struct

import torch

# ----------------------------------------------------------------------------------------------
# safetensors (format: u64 little-endian header length, JSON header, raw little-endian data)

_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        raw = bytearray(data[base + begin:base + end])
        if len(raw) == 0:
            t = torch.empty(info["shape"], dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(info["shape"])
        out[name] = t
    return out


def write_safetensors(path, tensors, metadata=None):
    """Writes tensors sorted by name (each tensor's bytes padded so the next stays 8-aligned is NOT
    needed when all share a dtype; we order by element size then name to keep alignment)."""
    items = sorted(tensors.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, t in items:
        t = t.detach().contiguous().cpu()
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        if nbytes:
            blobs.append(t.view(-1).view(torch.uint8).numpy().tobytes())
        offset += nbytes
    hs = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hs += b" " * ((8 - (8 + len(hs)) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hs)))
        f.write(hs)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_checkpoint(folder):
    single = os.path.join(folder, "model.safetensors")
    if os.path.exists(single):
        return read_safetensors(single)
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        index = json.load(f)
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        out.update(read_safetensors(os.path.join(folder, shard)))
    return out


# ----------------------------------------------------------------------------------------------
# config


class Config:
    def __init__(self, d):
        arch = (d.get("architectures") or [d.get("model_type")])[0]
        kinds = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral",
                 "Qwen2ForCausalLM": "qwen2", "llama": "llama", "mistral": "mistral", "qwen2": "qwen2"}
        if arch not in kinds:
            raise ValueError(f"unknown architecture {arch}")
        self.kind = kinds[arch]
        self.vocab_size = d["vocab_size"]
        self.hidden_size = d["hidden_size"]
        self.intermediate_size = d["intermediate_size"]
        self.num_hidden_layers = d["num_hidden_layers"]
        self.num_attention_heads = d["num_attention_heads"]
        self.num_key_value_heads = d.get("num_key_value_heads") or self.num_attention_heads
        self.head_dim = d.get("head_dim") or self.hidden_size // self.num_attention_heads
        self.rms_norm_eps = d.get("rms_norm_eps", 1e-6)
        self.rope_theta = d.get("rope_theta", 10000.0)
        self.rope_scaling = d.get("rope_scaling")
        self.attention_bias = d.get("attention_bias", False)
        self.mlp_bias = d.get("mlp_bias", False)
        self.tie_word_embeddings = d.get("tie_word_embeddings", False)
        self.sliding_window = None
        self.max_window_layers = 0
        if self.kind == "mistral":
            self.sliding_window = d.get("sliding_window")
        elif self.kind == "qwen2" and d.get("use_sliding_window", False):
            self.sliding_window = d.get("sliding_window")
            self.max_window_layers = d.get("max_window_layers", 0)

    def layer_window(self, i):
        if self.sliding_window is None:
            return None
        if self.kind == "qwen2" and i < self.max_window_layers:
            return None
        return self.sliding_window


def load_config(folder):
    with open(os.path.join(folder, "config.json")) as f:
        return Config(json.load(f))


# ----------------------------------------------------------------------------------------------
# model


def rope_inv_freq(cfg):
    dim = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rs = cfg.rope_scaling
    if not rs:
        return inv
    kind = rs.get("rope_type", rs.get("type"))
    if kind in (None, "default"):
        return inv
    if kind == "linear":
        return inv / rs["factor"]
    if kind != "llama3":
        raise ValueError(f"unsupported rope scaling {kind}")
    factor = rs["factor"]
    lo = rs["low_freq_factor"]
    hi = rs["high_freq_factor"]
    ctx = rs["original_max_position_embeddings"]
    lo_wavelen = ctx / lo
    hi_wavelen = ctx / hi
    wavelen = 2 * math.pi / inv
    # long wavelengths: divided by factor; short: kept; in between: interpolated
    out = torch.where(wavelen > lo_wavelen, inv / factor, inv)
    smooth = (ctx / wavelen - lo) / (hi - lo)
    mixed = (1 - smooth) * out / factor + smooth * out
    middle = ~(wavelen < hi_wavelen) * ~(wavelen > lo_wavelen)
    return torch.where(middle, mixed, out)


def rms_norm(x, w, eps):
    dt = x.dtype
    h = x.to(torch.promote_types(dt, torch.float32))
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return w * h.to(dt)


def rotate_half(x):
    a = x[..., : x.shape[-1] // 2]
    b = x[..., x.shape[-1] // 2:]
    return torch.cat((-b, a), dim=-1)


def repeat_kv(x, n):
    if n == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n, t, d).reshape(b, h * n, t, d)


class Model:
    def __init__(self, cfg, weights, dtype=torch.float32):
        self.cfg = cfg
        self.dtype = dtype
        self.acc_dtype = torch.promote_types(dtype, torch.float32)  # float32, or float64
        self.w = {k: v.to(dtype) for k, v in weights.items()}
        if cfg.tie_word_embeddings or "lm_head.weight" not in self.w:
            self.w["lm_head.weight"] = self.w["model.embed_tokens.weight"]
        self.inv_freq = rope_inv_freq(cfg)

    @staticmethod
    def load(folder, dtype=torch.float32):
        return Model(load_config(folder), read_checkpoint(folder), dtype)

    def _lin(self, x, name):
        return torch.nn.functional.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def forward(self, ids, attention_mask=None, position_ids=None, cache=None):
        """ids [B,T]; attention_mask [B, past+T] (HF style: covers cached and new tokens, 1=real);
        cache: list per layer of (k, v) [B, kv, past, d] or None. Returns (logits fp32 (fp64 for a float64 model), cache)."""
        cfg = self.cfg
        B, T = ids.shape
        past = 0 if cache is None or cache[0] is None else cache[0][0].shape[2]
        if attention_mask is None:
            attention_mask = torch.ones(B, past + T, dtype=torch.long)
        if position_ids is None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
        L = past + T
        # causal (+ sliding window) over cache indices, plus key padding; additive mask of min.
        qi = torch.arange(past, past + T)[:, None]
        kj = torch.arange(L)[None, :]
        minv = torch.finfo(self.dtype).min

        def make_mask(window):
            ok = kj <= qi
            if window is not None:
                ok = ok & (qi - kj < window)
            ok = ok[None, None, :, :] & attention_mask.bool()[:, None, None, :]
            m = torch.zeros(B, 1, T, L, dtype=self.dtype)
            return m.masked_fill(~ok, minv)

        masks = {}
        x = torch.nn.functional.embedding(ids, self.w["model.embed_tokens.weight"])
        freqs = position_ids.float()[:, :, None] * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos = emb.cos().to(self.dtype)[:, None]
        sin = emb.sin().to(self.dtype)[:, None]
        nh, nkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        new_cache = []
        for i in range(cfg.num_hidden_layers):
            p = f"model.layers.{i}."
            h = rms_norm(x, self.w[p + "input_layernorm.weight"], cfg.rms_norm_eps)
            q = self._lin(h, p + "self_attn.q_proj").view(B, T, nh, d).transpose(1, 2)
            k = self._lin(h, p + "self_attn.k_proj").view(B, T, nkv, d).transpose(1, 2)
            v = self._lin(h, p + "self_attn.v_proj").view(B, T, nkv, d).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if cache is not None and cache[i] is not None:
                k = torch.cat((cache[i][0], k), dim=2)
                v = torch.cat((cache[i][1], v), dim=2)
            new_cache.append((k, v))
            kr = repeat_kv(k, nh // nkv)
            vr = repeat_kv(v, nh // nkv)
            w = cfg.layer_window(i)
            if w not in masks:
                masks[w] = make_mask(w)
            scores = torch.matmul(q, kr.transpose(2, 3)) * (d ** -0.5)
            scores = scores + masks[w]
            probs = torch.softmax(scores, dim=-1, dtype=self.acc_dtype).to(self.dtype)
            o = torch.matmul(probs, vr).transpose(1, 2).reshape(B, T, nh * d)
            x = x + self._lin(o, p + "self_attn.o_proj")
            h = rms_norm(x, self.w[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
            a = torch.nn.functional.silu(self._lin(h, p + "mlp.gate_proj")) * self._lin(h, p + "mlp.up_proj")
            x = x + self._lin(a, p + "mlp.down_proj")
        x = rms_norm(x, self.w["model.norm.weight"], cfg.rms_norm_eps)
        logits = torch.nn.functional.linear(x, self.w["lm_head.weight"]).to(self.acc_dtype)
        return logits, new_cache

    @torch.no_grad()
    def greedy(self, prompts, max_new_tokens):
        """Batched greedy decoding with left padding and a KV cache (HF-style). Returns the new
        tokens per prompt and the smallest top-1/top-2 logit margin seen (for tie safety)."""
        B = len(prompts)
        T = max(len(p) for p in prompts)
        ids = torch.zeros(B, T, dtype=torch.long)
        mask = torch.zeros(B, T, dtype=torch.long)
        for b, p in enumerate(prompts):
            ids[b, T - len(p):] = torch.tensor(p)
            mask[b, T - len(p):] = 1
        cache = [None] * self.cfg.num_hidden_layers
        out = [[] for _ in prompts]
        margin = float("inf")
        logits, cache = self.forward(ids, mask, None, cache)
        last = logits[:, -1]
        for step in range(max_new_tokens):
            top = torch.topk(last, 2, dim=-1).values
            margin = min(margin, float((top[:, 0] - top[:, 1]).min()))
            nxt = last.argmax(-1)
            for b in range(B):
                out[b].append(int(nxt[b]))
            if step + 1 == max_new_tokens:
                break
            mask = torch.cat((mask, torch.ones(B, 1, dtype=torch.long)), dim=1)
            pos = (mask.sum(-1, keepdim=True) - 1)
            logits, cache = self.forward(nxt[:, None], mask, pos, cache)
            last = logits[:, -1]
        return out, margin
