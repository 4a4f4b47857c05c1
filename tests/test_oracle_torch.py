"""Derivatives of the torch oracle against float64 central finite differences, on every model family."""

import numpy as np
import pytest
import torch

from eosbench.oracle import build_oracle
from tests.helpers import FAMILIES

EPS = 1e-5


def rel_err(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def directions(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n) / np.sqrt(n) for _ in range(3)]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def oracle(request):
    return build_oracle(FAMILIES[request.param])


def test_gradient_matches_finite_differences(oracle):
    theta = oracle.theta0()
    v, _, _ = directions(oracle.num_params, 0)
    v = oracle.asarray(v)
    fd = (oracle.loss(theta + EPS * v) - oracle.loss(theta - EPS * v)) / (2 * EPS)
    exact = float(torch.dot(oracle.grad(theta), v))
    assert abs(fd - exact) <= 1e-6 * max(abs(exact), 1e-8)


def test_hvp_matches_finite_differences(oracle):
    theta = oracle.theta0()
    v = oracle.asarray(directions(oracle.num_params, 1)[0])
    fd = (oracle.grad(theta + EPS * v) - oracle.grad(theta - EPS * v)) / (2 * EPS)
    assert rel_err(oracle.to_numpy(oracle.hvp(theta, v)), oracle.to_numpy(fd)) < 1e-6


def test_block_hvp_equals_columns(oracle):
    theta = oracle.theta0()
    vs = [oracle.asarray(d) for d in directions(oracle.num_params, 2)]
    block = oracle.hvp(theta, torch.stack(vs, 1))
    for j, v in enumerate(vs):
        assert rel_err(oracle.to_numpy(block[:, j]), oracle.to_numpy(oracle.hvp(theta, v))) < 1e-12


def test_third_derivative_matches_finite_differences(oracle):
    theta = oracle.theta0()
    u, v, w = (oracle.asarray(d) for d in directions(oracle.num_params, 3))

    def curvature(t):
        return float(torch.dot(u, oracle.hvp(t, v)))

    fd = (curvature(theta + EPS * w) - curvature(theta - EPS * w)) / (2 * EPS)
    exact = float(torch.dot(oracle.d3(theta, u, v), w))
    scale = max(abs(exact), float(oracle.d3(theta, u, v).norm()) * float(w.norm()), 1e-10)
    assert abs(fd - exact) <= 1e-6 * scale


def test_top_eigenvalues_match_dense_hessian(oracle):
    theta = oracle.theta0()
    n = oracle.num_params
    dense = oracle.to_numpy(oracle.hvp(theta, oracle.asarray(np.eye(n))))
    exact = np.linalg.eigvalsh((dense + dense.T) / 2)[::-1][:3]
    k = min(3, n)
    top = oracle.eigs(theta, k, tol=1e-10, maxiter=500)
    np.testing.assert_allclose(top.values, exact[:k], rtol=1e-8, atol=1e-10 * abs(exact[0]))
