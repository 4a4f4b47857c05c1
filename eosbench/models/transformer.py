"""A tiny causal decoder-only transformer, pre-LayerNorm, written in plain ops (exact third derivatives)."""

from __future__ import annotations

import math

import numpy as np

from eosbench.backends.ops import Ops
from eosbench.models.base import Model, ParamLayout
from eosbench.models.layers import draw, layer_norm, weight_std
from eosbench.spec import TransformerModel

NEG_INF = -1e9


class Transformer(Model):
    """Token + learned position embeddings, ``layers`` blocks of causal multi-head attention and a GELU MLP,
    a final LayerNorm and an unembedding. Returns logits at the last ``predict_last`` positions
    (position i predicts token i+1)."""

    def __init__(self, spec: TransformerModel, output_dim: int, info: dict):
        if spec.d_model % spec.heads:
            raise ValueError(f"d_model {spec.d_model} is not divisible by heads {spec.heads}")
        self.spec = spec
        self.vocab, self.seq_len = int(info["vocab_size"]), int(info["seq_len"])
        self.predict_last = int(info.get("predict_last", self.seq_len))
        d, m = spec.d_model, spec.d_mlp
        entries = [("embed", (self.vocab, d)), ("pos", (self.seq_len, d))]
        for i in range(spec.layers):
            if spec.layernorm:
                entries += [(f"ln1_g{i}", (d,)), (f"ln1_b{i}", (d,))]
            entries += [(f"wq{i}", (d, d)), (f"wk{i}", (d, d)), (f"wv{i}", (d, d)), (f"wo{i}", (d, d))]
            if spec.layernorm:
                entries += [(f"ln2_g{i}", (d,)), (f"ln2_b{i}", (d,))]
            entries += [(f"w1{i}", (d, m)), (f"b1{i}", (m,)), (f"w2{i}", (m, d)), (f"b2{i}", (d,))]
        if spec.layernorm:
            entries += [("lnf_g", (d,)), ("lnf_b", (d,))]
        entries += [("unembed", (d, output_dim))]
        self.layout = ParamLayout(tuple(entries))

    def init(self, rng: np.random.Generator) -> np.ndarray:
        parts = []
        for name, shape in self.layout.entries:
            if name in ("embed", "pos"):
                parts.append(draw(rng, shape, self.spec.init.scale))
            elif name.startswith(("ln", "b")) or name.startswith("lnf"):
                parts.append(np.ones(shape) if "_g" in name else np.zeros(shape))
            else:
                parts.append(draw(rng, shape, weight_std(self.spec.init, shape[0], shape[1])))
        return np.concatenate([p.ravel() for p in parts])

    def _norm(self, ops, params, h, gain, bias):
        return layer_norm(ops, h, params[gain], params[bias]) if self.spec.layernorm else h

    def forward(self, ops: Ops, params, x):
        n, t = x.shape
        heads, d = self.spec.heads, self.spec.d_model
        dh = d // heads
        h = params["embed"][x] + params["pos"][:t]
        mask = ops.causal_mask(t, h)
        for i in range(self.spec.layers):
            a = self._norm(ops, params, h, f"ln1_g{i}", f"ln1_b{i}")

            def split(z):
                return ops.swapaxes(z.reshape((n, t, heads, dh)), 1, 2)

            q, k, v = split(a @ params[f"wq{i}"]), split(a @ params[f"wk{i}"]), split(a @ params[f"wv{i}"])
            scores = ops.where(mask, (q @ ops.swapaxes(k, -1, -2)) / math.sqrt(dh), NEG_INF)
            attn = ops.exp(scores - ops.logsumexp(scores, axis=-1, keepdims=True))
            h = h + ops.swapaxes(attn @ v, 1, 2).reshape((n, t, d)) @ params[f"wo{i}"]
            b = self._norm(ops, params, h, f"ln2_g{i}", f"ln2_b{i}")
            h = h + ops.gelu(b @ params[f"w1{i}"] + params[f"b1{i}"]) @ params[f"w2{i}"] + params[f"b2{i}"]
        h = self._norm(ops, params, h, "lnf_g", "lnf_b")
        return h[:, t - self.predict_last:] @ params["unembed"]

    def describe(self) -> dict:
        return {"num_params": self.layout.size, "arch": "transformer", "depth": self.spec.layers,
                "width": self.spec.d_model, "heads": self.spec.heads}
