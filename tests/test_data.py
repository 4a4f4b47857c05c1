"""Data sources: the CIFAR-10 reader on a fixture in the real (torchvision / Krizhevsky) format, digits
subsets, and the generated sets."""

import pickle

import numpy as np
import pytest

from eosbench.data import load_dataset
from eosbench.spec import TaskSpec

PER_BATCH = 12


def write_cifar_fixture(root, seed=0):
    """cifar-10-batches-py as torchvision extracts it: pickled dicts with bytes keys, uint8 rows of 3072
    values (1024 red, 1024 green, 1024 blue, each row-major 32×32), integer labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=PER_BATCH)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(PER_BATCH)]}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
        batches[name] = (data, np.array(labels))
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog",
                                      b"horse", b"ship", b"truck"], b"num_cases_per_batch": PER_BATCH,
                     b"num_vis": 3072}, fh, protocol=2)
    return batches


def load(data, loss="mse", data_dir=None):
    """The data set of a task with data block ``data`` (validated as part of a whole TaskSpec)."""
    spec = TaskSpec.model_validate({"id": "t", "tier": "full", "data": data, "model": {"arch": "mlp", "widths": [4]},
                                    "loss": loss, "optimizer": {"name": "gd", "lr": 0.1}, "steps": 1})
    return load_dataset(spec.data, loss=spec.loss, data_dir=data_dir)


def test_cifar_first_n_spans_batches_in_file_order_and_is_normalized(tmp_path):
    batches = write_cifar_fixture(tmp_path)
    data = load({"name": "cifar10", "n": 20, "n_test": 5}, data_dir=tmp_path)
    raw = np.concatenate([batches["data_batch_1"][0], batches["data_batch_2"][0]])[:20].astype(float) / 255
    images = raw.reshape(20, 3, 32, 32)
    mean, std = images.mean(axis=(0, 2, 3), keepdims=True), images.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(data.x, (images - mean) / std)
    labels = np.concatenate([batches["data_batch_1"][1], batches["data_batch_2"][1]])[:20]
    np.testing.assert_array_equal(data.y, np.eye(10)[labels])  # one-hot over all ten classes
    np.testing.assert_array_equal(data.y_test.argmax(1), batches["test_batch"][1][:5])
    np.testing.assert_allclose(data.x.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(data.x.std(axis=(0, 2, 3)), 1)


def test_cifar_per_class_and_class_filter(tmp_path):
    batches = write_cifar_fixture(tmp_path)
    labels = np.concatenate([batches[f"data_batch_{i}"][1] for i in range(1, 6)])
    classes, counts = np.unique(labels, return_counts=True)
    two = classes[counts >= 3][:2].tolist()
    data = load({"name": "cifar10", "n": 6, "subset": "per_class", "classes": two, "flatten": True}, "ce", tmp_path)
    assert data.x.shape == (6, 3072) and data.num_classes == 2
    assert np.bincount(data.y).tolist() == [3, 3]


def test_digits_subsets():
    first = load({"name": "digits", "n": 30})
    assert first.x.shape == (30, 64) and first.y.shape == (30, 10)
    balanced = load({"name": "digits", "n": 50, "subset": "per_class"}, "ce")
    assert np.bincount(balanced.y).tolist() == [5] * 10
    with pytest.raises(Exception, match="data.n"):
        load({"name": "digits", "n": 55, "subset": "per_class"})


def test_generated_sets_follow_the_seed():
    data = {"name": "sparse-coding", "n": 400, "dim": 20, "signal": 5.0}
    a, b = load(data, "logistic"), load(data, "logistic")
    np.testing.assert_array_equal(a.x, b.x)
    # x = λ·y·e_j + ξ: the largest |coordinate| of each row carries the label's sign (λ = 5 ≫ noise)
    row_max = a.x[np.arange(len(a.x)), np.abs(a.x).argmax(1)]
    assert np.mean(np.sign(row_max) == a.y[:, 0]) > 0.9
    other = load({**data, "seed": 1}, "logistic")
    assert not np.array_equal(a.x, other.x)


def test_a_cifar_task_measures_from_the_fixture(tmp_path):
    from eosbench.measure import measure

    write_cifar_fixture(tmp_path)
    spec = TaskSpec.model_validate({
        "id": "cifar-fixture", "tier": "full", "data": {"name": "cifar10", "n": 16, "flatten": True},
        "model": {"arch": "mlp", "widths": [8]}, "loss": "mse", "optimizer": {"name": "gd", "lr": 0.01},
        "steps": 3, "measure": {"k": 1}})
    trajectory = measure(spec, data_dir=tmp_path)
    assert trajectory.outcome == "completed" and np.isfinite(trajectory.frame["sharpness"]).all()
    assert trajectory.meta["data"]["n"] == 16


def test_plus_minus_one_targets_get_one_output():
    """±1 targets are one column, so the model has one output (it had two, and MSE broadcast a (n, 2)
    output against the (n, 1) targets): the loss equals ½·mean((f(x) − y)²) computed by hand."""
    from eosbench.oracle import build_oracle
    from tests.helpers import task

    spec = task({"arch": "mlp", "widths": [5], "activation": "tanh"}, {"name": "moons", "n": 30, "targets": "pm1"})
    oracle = build_oracle(spec)
    assert oracle.data.y.shape == (30, 1) and oracle.data.output_dim == 1
    theta = oracle.theta0()
    _, _, outputs = oracle.loss_grad_outputs(theta)
    outputs = np.asarray(outputs).reshape(30, -1)
    assert outputs.shape == (30, 1)
    expected = 0.5 * np.mean((outputs - oracle.data.y) ** 2)
    assert float(oracle.loss(theta)) == pytest.approx(expected, rel=1e-12)
