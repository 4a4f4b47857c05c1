"""The LOBPCG top-k solver against dense eigendecompositions."""

import torch

from eosbench.linalg import top_eigs


def symmetric(n, seed, top_gap=5.0):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    spectrum = torch.linspace(-3.0, 10.0, n, dtype=torch.float64)
    spectrum[-3:] += torch.tensor([top_gap, 2 * top_gap, 3 * top_gap], dtype=torch.float64)
    return (q * spectrum) @ q.T


def test_top_k_match_eigvalsh():
    a = symmetric(300, 0)
    exact = torch.linalg.eigvalsh(a).flip(0)[:3]
    result = top_eigs(lambda v: a @ v, 300, 3, tol=1e-9)
    assert result.converged
    torch.testing.assert_close(result.values, exact, rtol=1e-12, atol=0)
    residual = a @ result.vectors - result.vectors * result.values
    assert residual.norm(dim=0).max() < 1e-8 * exact[0]


def test_algebraic_not_magnitude():
    a = -symmetric(200, 1)  # most negative eigenvalues now have the largest magnitude
    exact = torch.linalg.eigvalsh(a).max()
    result = top_eigs(lambda v: a @ v, 200, 1, tol=1e-9, maxiter=500, dense_limit=0)
    assert abs(result.values[0] - exact) < 1e-9 * abs(exact)


def test_warm_start_is_cheap():
    a = symmetric(300, 2)
    cold = top_eigs(lambda v: a @ v, 300, 2, tol=1e-8)
    warm = top_eigs(lambda v: a @ v, 300, 2, v0=cold.vectors, tol=1e-8)
    assert warm.matvecs <= 4 < cold.matvecs
    torch.testing.assert_close(warm.values, cold.values, rtol=1e-12, atol=0)


def test_small_problems_are_solved_densely():
    a = symmetric(6, 3)
    result = top_eigs(lambda v: a @ v, 6, 2)
    torch.testing.assert_close(result.values, torch.linalg.eigvalsh(a).flip(0)[:2])
    assert result.matvecs == 6


def test_warm_start_in_an_exact_invariant_subspace():
    """Started from an exact eigenvector that is no longer the top one (an eigenvalue crossed it), LOBPCG
    stays on it; the dense path that small operators take returns the true top pair."""
    a = symmetric(120, 4)
    vals, vecs = torch.linalg.eigh(a)
    trapped = vecs[:, -5:-4]  # the fifth eigenvector: exactly invariant, not the top
    lobpcg = top_eigs(lambda v: a @ v, 120, 1, v0=trapped, tol=1e-8, dense_limit=0)
    assert abs(lobpcg.values[0] - vals[-5]) < 1e-10 * vals[-1]
    dense = top_eigs(lambda v: a @ v, 120, 1, v0=trapped, tol=1e-8)
    assert abs(dense.values[0] - vals[-1]) < 1e-12 * vals[-1]
    assert dense.matvecs == 120
