"""Top-k symmetric eigen-solver for Hessians given only as matrix-vector products.

LOBPCG (Knyazev 2001) for the algebraically largest eigenvalues, with soft locking of converged columns
and SVQB orthonormalization of the search directions (Duersch, Shao, Yang, Gu 2018, Alg. 4), so each
iteration costs one Hessian-vector product per *unconverged* column. Warm-starting from the previous
step's eigenvectors is what makes per-step sharpness cheap: along a GD trajectory the top eigenvectors
move little, and a converged warm start costs exactly k products. Runs on torch tensors on any device;
the operator ``matvec`` maps a (P, m) block to a (P, m) block.

A warm start cannot leave an exact invariant subspace: started from an exact eigenvector, LOBPCG
returns that eigenpair even after another eigenvalue has crossed above it. The toy models' symmetries
make such subspaces real (on the UV model the ±(f − y)/√w eigenspaces are exactly invariant, and the
top eigenvalue crosses them as f → y), and the toy models are small, so operators of dimension up to
``DENSE_LIMIT`` are solved exactly from the dense matrix (n products in one block) instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]
DENSE_LIMIT = 256  # operators of at most this dimension are solved densely


@dataclass(frozen=True)
class TopEigs:
    values: torch.Tensor  # (k,), decreasing
    vectors: torch.Tensor  # (P, k)
    matvecs: int
    iterations: int
    converged: bool


def _orthonormalize(basis: torch.Tensor, image: torch.Tensor, drop: float) -> tuple[torch.Tensor, torch.Tensor]:
    """SVQB: orthonormal columns spanning ``basis`` (dropping near-dependent directions), and their images."""
    norms = basis.norm(dim=0).clamp_min(torch.finfo(basis.dtype).tiny)
    basis, image = basis / norms, image / norms
    gram = basis.T @ basis
    s, v = torch.linalg.eigh((gram + gram.T) / 2)
    keep = s > drop * s.max()
    transform = v[:, keep] / s[keep].sqrt()
    return basis @ transform, image @ transform


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch's CPU kernels on one thread, so the result is the same bits whatever the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def top_eigs(matvec: Matvec, n: int, k: int, *, v0: torch.Tensor | None = None, tol: float = 1e-7,
             maxiter: int = 100, extra: int = 0, dtype: torch.dtype = torch.float64,
             device: torch.device | str = "cpu", seed: int = 0, dense_limit: int = DENSE_LIMIT) -> TopEigs:
    """The k algebraically largest eigenpairs of the symmetric operator ``matvec`` on R^n.

    Convergence: every column's residual ‖Ax − λx‖ ≤ tol·max(|λ_1|, ε) (so eigenvalues are accurate to
    about tol² relative). ``extra`` guard columns ride along unreported: they speed up convergence when
    eigenvalue k is close to k+1. ``v0`` (n × m) warm-starts the first min(m, k + extra) columns; missing
    ones are random (from ``seed``). Small problems (n ≤ max(3(k + extra), ``dense_limit``)) are solved
    densely from n products, which is exact and immune to the warm-start trap above.
    The returned vectors include the guard columns (pass them back as the next ``v0``).
    """
    wanted, k = k, k + extra
    if n <= max(3 * k, dense_limit):
        dense = matvec(torch.eye(n, dtype=dtype, device=device))
        with one_thread():  # LAPACK's threaded eigh rounds differently with the thread count
            vals, vecs = torch.linalg.eigh((dense + dense.T) / 2)
        return TopEigs(vals.flip(0)[:wanted], vecs.flip(1)[:, :k], n, 0, True)

    gen = torch.Generator(device="cpu").manual_seed(seed)
    start = torch.randn(n, k, generator=gen, dtype=dtype).to(device)
    if v0 is not None:
        m = min(v0.shape[1] if v0.ndim == 2 else 1, k)
        start[:, :m] = v0.reshape(n, -1)[:, :m].to(dtype=dtype, device=device)
    x, _ = torch.linalg.qr(start)
    ax = matvec(x)
    matvecs = k
    drop = 1e3 * torch.finfo(dtype).eps

    def rayleigh_ritz(basis, image):
        g = basis.T @ image
        vals, vecs = torch.linalg.eigh((g + g.T) / 2)
        order = torch.argsort(vals, descending=True)[:k]
        return vals[order], vecs[:, order]

    theta, c = rayleigh_ritz(x, ax)
    x, ax = x @ c, ax @ c
    p = ap = None
    converged = False
    iteration = 0
    for iteration in range(1, maxiter + 1):
        residual = ax - x * theta
        scale = max(theta.abs().max().item(), torch.finfo(dtype).eps)
        active = residual.norm(dim=0) > tol * scale
        if not bool(active[:wanted].any()):
            converged = True
            iteration -= 1
            break
        # new directions: active residuals, orthogonalized against the current block (twice, for stability)
        w = residual[:, active]
        for _ in range(2):
            w = w - x @ (x.T @ w)
        w_norms = w.norm(dim=0)
        w = w[:, w_norms > drop * w_norms.max()]
        if w.shape[1] == 0:
            converged = True
            break
        aw = matvec(w)
        matvecs += w.shape[1]
        if p is not None:
            coef = x.T @ p
            p, ap = p - x @ coef, ap - ax @ coef
            q, aq = _orthonormalize(torch.cat([w, p], 1), torch.cat([aw, ap], 1), drop)
        else:
            q, aq = _orthonormalize(w, aw, drop)
        # keep the extra directions exactly orthogonal to x (SVQB mixes only w and p)
        basis, image = torch.cat([x, q], 1), torch.cat([ax, aq], 1)
        theta, c = rayleigh_ritz(basis, image)
        x, ax = basis @ c, image @ c
        p, ap = q @ c[k:], aq @ c[k:]
    return TopEigs(theta[:wanted], x, matvecs, iteration, converged)
