"""The torch backend: a task's loss and its derivatives as functions of a flat θ (``torch.autograd``).

Gradients are reverse mode; Hessian-vector products are reverse-over-reverse (the gradient of ⟨∇L, v⟩),
and a block of m vectors reuses one differentiable gradient graph, pushed through one vectorized
backward pass per ``HVP_CHUNK`` columns (17–50× faster than a loop of m passes on the tiny MLP,
transformer and UV models; a dense Hessian is the block of the identity); the
third-derivative contraction ∇³L[u, v] = ∇_θ⟨u, H(θ)v⟩ differentiates that product once more with u, v
held fixed. Plain autograd is used rather than ``torch.func`` because its per-call overhead is 2–5×
lower on the small models of the CPU tiers (HVP ≈ 2.3× a gradient on the digits MLP).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

from eosbench.backends.ops import TORCH_OPS
from eosbench.data.base import Dataset
from eosbench.errors import BackendUnavailableError
from eosbench.linalg import top_eigs
from eosbench.losses import accuracy, loss_value
from eosbench.models.base import Model
from eosbench.oracle import Counters, EigResult, initial_theta
from eosbench.spec import TaskSpec


def resolve_device(device: str) -> torch.device:
    """A torch device, or a clear error when CUDA is asked for and absent."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise BackendUnavailableError(
                f"Device {device!r} was requested but this torch build sees no CUDA device "
                f"(torch {torch.__version__}, cuda available: False). Run on --device cpu, or install a "
                "CUDA build of torch on a machine with an NVIDIA GPU.")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # needed for deterministic cuBLAS
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.device(device)


HVP_CHUNK = 256  # columns per vectorized backward pass: memory grows with it, speed saturates


class TorchOracle:
    """:class:`eosbench.oracle.Oracle` implemented with ``torch.autograd`` on a flat θ."""

    backend = "torch"

    def __init__(self, spec: TaskSpec, model: Model, data: Dataset, device: str = "cpu"):
        self.spec, self.model, self.data = spec, model, data
        self.device = resolve_device(device)
        self.dtype = getattr(torch, spec.dtype)
        self.num_params = model.layout.size
        self.counters = Counters()
        self._x = self._tensor(data.x)
        self._y = self._tensor(data.y)
        self._x_test = None if data.x_test is None or len(data.x_test) == 0 else self._tensor(data.x_test)
        self._y_test = None if self._x_test is None else self._tensor(data.y_test)

    # ------------------------------------------------------------------ plumbing
    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        dtype = torch.int64 if np.issubdtype(array.dtype, np.integer) else self.dtype
        return torch.as_tensor(array, dtype=dtype, device=self.device)

    def _batch(self, batch: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor]:
        if batch is None:
            return self._x, self._y
        index = torch.as_tensor(batch, device=self.device)
        return self._x[index], self._y[index]

    def _objective(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor):
        out = self.model.forward(TORCH_OPS, self.model.layout.unflatten(theta), x)
        return loss_value(TORCH_OPS, self.spec.loss, out, y), out

    def _gradient_graph(self, theta, x, y, create_graph: bool):
        """(leaf θ, loss, ∇L, outputs) with the gradient itself differentiable when ``create_graph``."""
        with torch.enable_grad():
            leaf = theta.detach().requires_grad_(True)
            value, out = self._objective(leaf, x, y)
            g = torch.autograd.grad(value, leaf, create_graph=create_graph)[0]
        return leaf, value.detach(), g, out.detach()

    def _hvp_columns(self, theta, block, x, y) -> torch.Tensor:
        leaf, _, g, _ = self._gradient_graph(theta, x, y, create_graph=True)
        return self._hessian_times(leaf, g, block, keep_graph=False)

    @staticmethod
    def _hessian_times(leaf, g, block, keep_graph: bool) -> torch.Tensor:
        """H·block by differentiating the gradient graph ``g`` of ``leaf`` again; ``keep_graph`` leaves that
        graph for further products (an eigensolver's matvecs at one θ share one graph)."""
        chunks = torch.split(block, HVP_CHUNK, dim=1)
        with torch.enable_grad():
            if block.shape[1] == 1:
                return torch.autograd.grad(g, leaf, block[:, 0], retain_graph=keep_graph)[0][:, None]
            return torch.cat([torch.autograd.grad(g, leaf, chunk.T, is_grads_batched=True,
                                                  retain_graph=keep_graph or i < len(chunks) - 1)[0].T
                              for i, chunk in enumerate(chunks)], 1)

    # ------------------------------------------------------------------ the oracle
    def theta0(self) -> torch.Tensor:
        return self.asarray(initial_theta(self.model, self.spec.model.seed))

    def asarray(self, values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(values), dtype=self.dtype, device=self.device)

    def to_numpy(self, array: Any) -> np.ndarray:
        return array.detach().to("cpu", torch.float64).numpy()

    @torch.no_grad()
    def loss(self, theta, batch=None) -> float:
        self.counters.losses += 1
        return float(self._objective(theta, *self._batch(batch))[0])

    def grad(self, theta, batch=None) -> torch.Tensor:
        self.counters.grads += 1
        return self._gradient_graph(theta, *self._batch(batch), create_graph=False)[2]

    def loss_and_grad(self, theta, batch=None) -> tuple[float, torch.Tensor]:
        self.counters.grads += 1
        _, value, g, _ = self._gradient_graph(theta, *self._batch(batch), create_graph=False)
        return float(value), g

    def loss_grad_outputs(self, theta) -> tuple[float, torch.Tensor, np.ndarray]:
        self.counters.grads += 1
        _, value, g, out = self._gradient_graph(theta, self._x, self._y, create_graph=False)
        return float(value), g, out.to("cpu", torch.float64).numpy()

    def hvp(self, theta, v, batch=None) -> torch.Tensor:
        x, y = self._batch(batch)
        block = v[:, None] if v.ndim == 1 else v
        self.counters.hvps += block.shape[1]
        out = self._hvp_columns(theta, block, x, y)
        return out[:, 0] if v.ndim == 1 else out

    def d3(self, theta, u, v) -> torch.Tensor:
        self.counters.d3s += 1
        leaf, _, g, _ = self._gradient_graph(theta, self._x, self._y, create_graph=True)
        with torch.enable_grad():
            hv = torch.autograd.grad(g, leaf, v, create_graph=True)[0]
            if not hv.requires_grad:  # the Hessian is constant (a quadratic): ∇³L = 0
                return torch.zeros_like(leaf)
            return torch.autograd.grad(torch.dot(u, hv), leaf, allow_unused=True, materialize_grads=True)[0]

    def eigs(self, theta, k, v0=None, tol=1e-7, maxiter=100, precondition=None, batch=None) -> EigResult:
        leaf, _, g, _ = self._gradient_graph(theta, *self._batch(batch), create_graph=True)  # one for all matvecs
        if precondition is None:
            def matvec(block):
                return self._hessian_times(leaf, g, block, keep_graph=True)
        else:
            d = precondition[:, None]

            def matvec(block):
                return d * self._hessian_times(leaf, g, d * block, keep_graph=True)
        result = top_eigs(matvec, self.num_params, k, v0=v0, tol=tol, maxiter=maxiter, dtype=self.dtype,
                          device=self.device)
        self.counters.hvps += result.matvecs
        return EigResult(result.values.to("cpu", torch.float64).numpy(), result.vectors, result.matvecs,
                         result.iterations, result.converged)

    @torch.no_grad()
    def accuracy(self, theta) -> float:
        self.counters.losses += 1
        out = self.model.forward(TORCH_OPS, self.model.layout.unflatten(theta), self._x)
        return accuracy(self.spec.loss, out.to("cpu", torch.float64).numpy(), self.data.y, self.data.num_classes)

    @torch.no_grad()
    def test_loss_accuracy(self, theta) -> tuple[float, float]:
        if self._x_test is None:
            return float("nan"), float("nan")
        self.counters.losses += 1
        value, out = self._objective(theta, self._x_test, self._y_test)
        acc = accuracy(self.spec.loss, out.to("cpu", torch.float64).numpy(), self.data.y_test, self.data.num_classes)
        return float(value), acc
