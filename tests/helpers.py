"""Small task specs shared by the tests (built in code so the tests do not depend on tasks/)."""

from eosbench.spec import TaskSpec


def task(model: dict, data: dict | None = None, loss: str = "mse", lr: float = 0.1, steps: int = 20,
         **extra) -> TaskSpec:
    return TaskSpec.model_validate({
        "id": "test-task", "tier": "tiny", "data": data or {"name": "none"}, "model": model, "loss": loss,
        "optimizer": extra.pop("optimizer", {"name": "gd", "lr": lr}), "steps": steps, **extra})


DIGITS = {"name": "digits", "n": 40}
FAMILIES = {
    "mlp-tanh": task({"arch": "mlp", "widths": [6, 5], "activation": "tanh"}, DIGITS),
    "mlp-ntk-gelu-ce": task({"arch": "mlp", "widths": [7], "activation": "gelu", "parameterization": "ntk"},
                            DIGITS, loss="ce"),
    "cnn-groupnorm": task({"arch": "cnn", "channels": [4, 4], "groupnorm_groups": 2, "activation": "tanh"},
                          {"name": "digits", "n": 12}),
    "resnet-groupnorm": task({"arch": "cnn", "channels": [2, 4], "groupnorm_groups": 2, "activation": "gelu",
                              "residual_blocks": 1}, {"name": "digits", "n": 8}),
    "transformer": task({"arch": "transformer", "d_model": 8, "heads": 2, "d_mlp": 8},
                        {"name": "sorting", "n": 12, "length": 3, "vocab": 4}, loss="ce"),
    "quadratic": task({"arch": "quadratic", "spectrum": [0.5, 1.0, 3.0]}, loss="value"),
    "uv": task({"arch": "uv", "width": 5, "init": {"scheme": "normal", "scale": 0.5}}, {"name": "none", "target": 1.0}),
    "product-sqrt": task({"arch": "product", "x0": 1.2, "y0": 0.3}, loss="sqrt"),
    "product-symlogistic": task({"arch": "product", "x0": 1.2, "y0": 0.3}, loss="sym-logistic"),
    "chain": task({"arch": "chain", "depth": 3, "w0": 0.9, "init": {"scheme": "normal", "scale": 0.1}},
                  {"name": "none", "target": 2.0}),
    "deep-linear": task({"arch": "deep-linear", "depth": 3, "width": 4}, {"name": "gaussian-mixture", "n": 10, "dim": 3}),
    "sparse-relu": task({"arch": "sparse-relu", "width": 6, "bias0": -0.1}, {"name": "sparse-coding", "n": 16, "dim": 8},
                        loss="logistic"),
}


def quadratic_yaml(steps: int) -> str:
    """A task file of a 3-parameter quadratic (spectrum 1, 2, 3; η = 0.1), for CLI tests."""
    return ("id: quad\ntier: tiny\ndata: {name: none}\nmodel: {arch: quadratic, spectrum: [1, 2, 3]}\n"
            f"loss: value\noptimizer: {{name: gd, lr: 0.1}}\nsteps: {steps}\n")


def sparse_plan(spec: TaskSpec, every: int = 5) -> TaskSpec:
    """The task with the sharpness measured every ``every`` steps (the loss trajectory is unchanged)."""
    return spec.model_copy(update={"measure": spec.measure.model_copy(update={"sharpness_every": every})})
