"""The array operations models are written in, so one model definition serves every backend.

A model's ``forward(ops, params, x)`` uses only Python operators on arrays (``+``, ``*``, ``@``,
indexing, ``.reshape``, ``.T``) and the functions of an :class:`Ops` namespace. The torch namespace
lives here; the JAX one lives in :mod:`eosbench.backends.jax`. Keeping both to the same short list
is what makes the two backends agree number for number.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

Array = Any


class Ops(Protocol):
    """Functions a model may call besides Python's array operators."""

    def tanh(self, x: Array) -> Array: ...
    def relu(self, x: Array) -> Array: ...
    def gelu(self, x: Array) -> Array: ...  # tanh approximation
    def sigmoid(self, x: Array) -> Array: ...
    def softplus(self, x: Array) -> Array: ...
    def exp(self, x: Array) -> Array: ...
    def log(self, x: Array) -> Array: ...
    def sqrt(self, x: Array) -> Array: ...
    def abs(self, x: Array) -> Array: ...
    def sum(self, x: Array, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Array: ...
    def mean(self, x: Array, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Array: ...
    def prod(self, x: Array, axis: int) -> Array: ...
    def logsumexp(self, x: Array, axis: int, keepdims: bool = False) -> Array: ...
    def take_along_last(self, x: Array, index: Array) -> Array: ...
    def where(self, cond: Array, a: Array, b: Array) -> Array: ...
    def swapaxes(self, x: Array, a: int, b: int) -> Array: ...
    def concat(self, xs: list[Array], axis: int) -> Array: ...
    def conv2d(self, x: Array, w: Array, stride: int, padding: int) -> Array: ...
    def causal_mask(self, n: int, like: Array) -> Array: ...
    def asarray(self, x: Any, like: Array) -> Array: ...


class TorchOps:
    """:class:`Ops` on torch tensors (NCHW images, OIHW kernels)."""

    name = "torch"

    tanh = staticmethod(torch.tanh)
    relu = staticmethod(torch.relu)
    sigmoid = staticmethod(torch.sigmoid)
    exp = staticmethod(torch.exp)
    log = staticmethod(torch.log)
    sqrt = staticmethod(torch.sqrt)
    abs = staticmethod(torch.abs)
    where = staticmethod(torch.where)

    @staticmethod
    def gelu(x):
        return F.gelu(x, approximate="tanh")

    @staticmethod
    def softplus(x):
        return F.softplus(x)

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return x.sum() if axis is None else x.sum(dim=axis, keepdim=keepdims)

    @staticmethod
    def mean(x, axis=None, keepdims=False):
        return x.mean() if axis is None else x.mean(dim=axis, keepdim=keepdims)

    @staticmethod
    def prod(x, axis):
        return x.prod(dim=axis)

    @staticmethod
    def logsumexp(x, axis, keepdims=False):
        return torch.logsumexp(x, dim=axis, keepdim=keepdims)

    @staticmethod
    def take_along_last(x, index):
        return torch.take_along_dim(x, index[..., None], dim=-1)[..., 0]

    @staticmethod
    def swapaxes(x, a, b):
        return x.transpose(a, b)

    @staticmethod
    def concat(xs, axis):
        return torch.cat(xs, dim=axis)

    @staticmethod
    def conv2d(x, w, stride, padding):
        return F.conv2d(x, w, stride=stride, padding=padding)

    @staticmethod
    def causal_mask(n, like):
        return torch.ones(n, n, dtype=torch.bool, device=like.device).tril()

    @staticmethod
    def asarray(x, like):
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)


TORCH_OPS = TorchOps()
