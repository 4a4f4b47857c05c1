"""Task specifications: the pydantic models that a ``tasks/*.yaml`` file is validated against.

A :class:`TaskSpec` fixes everything that decides the numbers of a measured run: the data recipe, the
architecture and its initialization, the loss, the optimizer, the number of steps, the measurement plan,
the dtype and the device. :func:`spec_hash` hashes the normalized spec (defaults filled in) so that
two files that mean the same run share one store entry.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from eosbench.batch_sharpness import DEFAULT_SAMPLES

SCHEMA_VERSION = 1
FORECAST_FRACTIONS = (0.25, 0.5, 0.75)


class _Strict(BaseModel):
    """Base for every spec block: unknown fields are errors, values are immutable, numbers are finite
    (``.inf`` or ``.nan`` anywhere, e.g. a learning rate or a spectrum entry, is an error naming the field)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --------------------------------------------------------------------------------------------- data
class _DataBase(_Strict):
    n: int | None = Field(None, gt=0, description="number of training examples (None: all / the natural size)")
    n_test: int = Field(0, ge=0, description="held-out examples for test loss and accuracy")
    seed: int = Field(0, description="seed of generated data and of subset selection")


class DigitsData(_DataBase):
    """scikit-learn's 8×8 digits (1797 images), standardized per pixel."""

    name: Literal["digits"] = "digits"
    subset: Literal["first", "per_class", "random"] = Field(
        "first", description="the first n in file order, n/k per class, or n at random by the data seed")
    classes: list[int] | None = Field(None, description="keep only these digits (relabelled 0..k-1)")
    targets: Literal["onehot", "index"] = "onehot"
    standardize: bool = True


class Cifar10Data(_DataBase):
    """CIFAR-10 read from a local folder in torchvision's layout (``cifar-10-batches-py``)."""

    name: Literal["cifar10"] = "cifar10"
    subset: Literal["first", "per_class", "random"] = "first"
    classes: list[int] | None = None
    targets: Literal["onehot", "index"] = "onehot"
    normalize: bool = Field(True, description="per-channel standardization with the training set's statistics")
    flatten: bool = Field(False, description="return vectors of 3072 instead of 3×32×32 images")


class GaussianMixtureData(_DataBase):
    """k isotropic Gaussian clusters in d dimensions with random means of norm ``separation``."""

    name: Literal["gaussian-mixture"] = "gaussian-mixture"
    dim: int = Field(10, gt=0)
    classes: int = Field(2, ge=2)
    separation: float = Field(3.0, gt=0)
    targets: Literal["onehot", "index", "pm1"] = "onehot"


class MoonsData(_DataBase):
    """scikit-learn's two interleaving half-circles."""

    name: Literal["moons"] = "moons"
    noise: float = Field(0.1, ge=0)
    targets: Literal["onehot", "index", "pm1"] = "pm1"


class SparseCodingData(_DataBase):
    """Sparse coding of Ahn et al. (2023): x = λ·y·e_j + ξ, ξ ~ N(0, I_d), y = ±1, j uniform."""

    name: Literal["sparse-coding"] = "sparse-coding"
    dim: int = Field(200, gt=0)
    signal: float = Field(3.0, description="λ, the strength of the planted coordinate")


class SortingData(_DataBase):
    """Sequences of ``length`` tokens from a vocabulary of ``vocab``; the model predicts them sorted.

    Input: the unsorted tokens, a separator, and the sorted tokens shifted right (teacher forcing);
    targets: the sorted tokens (next-token prediction on the second half).
    """

    name: Literal["sorting"] = "sorting"
    length: int = Field(5, gt=1)
    vocab: int = Field(8, gt=1)


class NoData(_Strict):
    """Toy objectives with no data set (quadratics, UV model, ℓ(xy), deep chains)."""

    name: Literal["none"] = "none"
    target: float = Field(0.0, description="the scalar target y (UV model, deep chain); ignored by quadratics")


class _PluginBlock(_Strict):
    """A block naming a plugin (entry points, :mod:`eosbench.components`): its own keys are kept as extra
    fields, validated by the plugin's ``Params`` and stored with defaults filled in."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    _kind: ClassVar[str] = ""

    def _check_plugin(self, name: str, builtins: tuple[str, ...]):
        from eosbench.components import validate_params

        extra = self.__pydantic_extra__
        normalized = validate_params(self._kind, name, dict(extra), builtins)
        extra.clear()
        extra.update(normalized)
        return self

    @property
    def params(self):
        """The plugin's validated ``Params`` (None when it declares none)."""
        from eosbench.components import params_of

        return params_of(self._kind, self._plugin_name, dict(self.__pydantic_extra__))


class PluginData(_PluginBlock, _DataBase):
    """A data recipe from an installed package (entry-point group ``eosbench.data``), called as
    ``load(spec, loss)``; ``n``, ``n_test`` and ``seed`` are eosbench's, the other keys the recipe's."""

    model_config = _PluginBlock.model_config
    _kind: ClassVar[str] = "data"
    name: str

    @property
    def _plugin_name(self) -> str:
        return self.name

    @model_validator(mode="after")
    def _plugin(self):
        return self._check_plugin(self.name, BUILTIN_DATA)


def _tag(key: str, builtins: tuple[str, ...]):
    """The union member of a block: its built-in name, ``plugin`` for any other name, None when missing."""
    def tag(value):
        name = value.get(key) if isinstance(value, dict) else getattr(value, key, None)
        if name is None:
            return None
        return name if name in builtins else "plugin"
    return tag


_DATA = (DigitsData, Cifar10Data, GaussianMixtureData, MoonsData, SparseCodingData, SortingData, NoData)
BUILTIN_DATA = tuple(cls.model_fields["name"].default for cls in _DATA)
DataSpec = Annotated[
    Annotated[DigitsData, Tag("digits")] | Annotated[Cifar10Data, Tag("cifar10")]
    | Annotated[GaussianMixtureData, Tag("gaussian-mixture")] | Annotated[MoonsData, Tag("moons")]
    | Annotated[SparseCodingData, Tag("sparse-coding")] | Annotated[SortingData, Tag("sorting")]
    | Annotated[NoData, Tag("none")] | Annotated[PluginData, Tag("plugin")],
    Discriminator(_tag("name", BUILTIN_DATA), custom_error_type="missing_name",
                  custom_error_message="the data block needs a 'name' (a built-in recipe or an installed plugin)"),
]


# -------------------------------------------------------------------------------------------- model
class Init(_Strict):
    """Initialization: weights ~ N(0, (scale·gain)²/fan_in) for ``lecun``; ``normal`` is N(0, scale²)."""

    scheme: Literal["lecun", "he", "xavier", "normal", "zeros"] = "lecun"
    scale: float = Field(1.0, ge=0)


class _ModelBase(_Strict):
    seed: int = Field(0, description="seed of the initialization (independent of the backend)")
    init: Init = Init()

    @property
    def seeded(self) -> bool:
        """Whether θ0 is drawn from ``seed`` (False for a fixed starting point: another seed is the same run)."""
        return self.init.scheme != "zeros" and self.init.scale > 0


Activation = Literal["tanh", "relu", "gelu", "softplus", "linear", "sigmoid"]


class MLPModel(_ModelBase):
    """Fully connected network: ``widths`` are the hidden layers."""

    arch: Literal["mlp"] = "mlp"
    widths: list[int] = Field(default_factory=lambda: [64, 64])
    activation: Activation = "tanh"
    bias: bool = True
    parameterization: Literal["standard", "ntk"] = "standard"


class CNNModel(_ModelBase):
    """Small CNN: 3×3 convolutions (stride 1, padding 1) each followed by activation and 2×2 mean pooling
    when ``pool`` is set, then global mean pooling and a linear read-out. GroupNorm optional (never BatchNorm).
    ``residual_blocks`` > 0 makes it a ResNet: after each stage, that many blocks
    h ← act(h + GN(conv(act(GN(conv(h)))))) at the stage's width (He et al. 2016, GroupNorm for BatchNorm)."""

    arch: Literal["cnn"] = "cnn"
    channels: list[int] = Field(default_factory=lambda: [8, 16])
    activation: Activation = "relu"
    groupnorm_groups: int = Field(0, ge=0, description="0 disables GroupNorm")
    pool: bool = True
    bias: bool = True
    residual_blocks: int = Field(0, ge=0, description="residual blocks per stage (0: a plain CNN)")


class TransformerModel(_ModelBase):
    """Tiny causal transformer (pre-LayerNorm, written in plain ops so third derivatives are right)."""

    arch: Literal["transformer"] = "transformer"
    d_model: int = Field(16, gt=0)
    heads: int = Field(2, gt=0)
    layers: int = Field(1, gt=0)
    d_mlp: int = Field(32, gt=0)
    layernorm: bool = True


class QuadraticModel(_ModelBase):
    """L(θ) = ½ Σ_i λ_i θ_i² with the given spectrum (θ0 ~ N(0, scale²) unless ``theta0`` is given)."""

    arch: Literal["quadratic"] = "quadratic"
    spectrum: list[float]
    theta0: list[float] | None = None

    @property
    def seeded(self) -> bool:
        return self.theta0 is None

    @model_validator(mode="after")
    def _check(self):
        if self.theta0 is not None and len(self.theta0) != len(self.spectrum):
            raise ValueError("theta0 must have one entry per eigenvalue in spectrum")
        return self


class UVModel(_ModelBase):
    """f = uᵀv/√w on one example (Kalra, He, Barkeshli 2023); u, v ∈ R^w, entries ~ N(0, scale²)."""

    arch: Literal["uv"] = "uv"
    width: int = Field(100, gt=0)


class ProductModel(_ModelBase):
    """Two scalars (x, y) with objective ℓ(x·y) (Ahn et al. 2023); use with loss ``sym-logistic``/``sqrt``."""

    arch: Literal["product"] = "product"
    x0: float = 1.0
    y0: float = 0.05

    @property
    def seeded(self) -> bool:
        return False


class DeepChainModel(_ModelBase):
    """Scalar deep chain ½(∏_{i=1}^L w_i − r)² (Nar & Sastry 2018); w_i = w0 + N(0, scale²)."""

    arch: Literal["chain"] = "chain"
    depth: int = Field(4, gt=0)
    w0: float = 1.0


class DeepLinearModel(_ModelBase):
    """Deep linear network x ↦ W_L ⋯ W_1 x with square hidden layers of ``width``."""

    arch: Literal["deep-linear"] = "deep-linear"
    depth: int = Field(3, gt=0)
    width: int = Field(8, gt=0)


class SparseReLUModel(_ModelBase):
    """Two-layer ReLU net with biases for the sparse-coding task (Ahn et al. 2023):
    f(x) = Σ_i a_i·[relu(w_iᵀx + b_i) − relu(−w_iᵀx + b_i)], biases initialised at ``bias0``."""

    arch: Literal["sparse-relu"] = "sparse-relu"
    width: int = Field(20, gt=0)
    bias0: float = 0.0


class PluginModel(_PluginBlock, _ModelBase):
    """A model from an installed package (entry-point group ``eosbench.models``), built as
    ``build(spec, input_shape, output_dim, info)``; ``seed`` and ``init`` are eosbench's, the other keys
    the plugin's."""

    model_config = _PluginBlock.model_config
    _kind: ClassVar[str] = "model"
    arch: str

    @property
    def _plugin_name(self) -> str:
        return self.arch

    @model_validator(mode="after")
    def _plugin(self):
        return self._check_plugin(self.arch, BUILTIN_MODELS)


_MODELS = (MLPModel, CNNModel, TransformerModel, QuadraticModel, UVModel, ProductModel, DeepChainModel,
           DeepLinearModel, SparseReLUModel)
BUILTIN_MODELS = tuple(cls.model_fields["arch"].default for cls in _MODELS)
ModelSpec = Annotated[
    Annotated[MLPModel, Tag("mlp")] | Annotated[CNNModel, Tag("cnn")] | Annotated[TransformerModel, Tag("transformer")]
    | Annotated[QuadraticModel, Tag("quadratic")] | Annotated[UVModel, Tag("uv")] | Annotated[ProductModel, Tag("product")]
    | Annotated[DeepChainModel, Tag("chain")] | Annotated[DeepLinearModel, Tag("deep-linear")]
    | Annotated[SparseReLUModel, Tag("sparse-relu")] | Annotated[PluginModel, Tag("plugin")],
    Discriminator(_tag("arch", BUILTIN_MODELS), custom_error_type="missing_arch",
                  custom_error_message="the model block needs an 'arch' (a built-in architecture or an installed plugin)"),
]

# --------------------------------------------------------------------------------------------- loss
LossName = Literal["mse", "ce", "logistic", "sym-logistic", "sqrt", "value"]
"""``mse``: ½Σ_outputs(f−y)², mean over examples. ``ce``: softmax cross-entropy, mean. ``logistic``:
log(1+e^{−yf}) with y=±1, mean. ``sym-logistic``: ℓ(z)=log(1+e^z)+log(1+e^{−z})−2log2 of the output z
(ℓ''(0)=½). ``sqrt``: ℓ(z)=√(1+z²)−1 (ℓ''(0)=1). ``value``: the model's output is the loss."""


# ---------------------------------------------------------------------------------------- optimizer
class _OptimizerBase(_Strict):
    lr: float | None = Field(None, gt=0, description="the learning rate η")
    c: float | None = Field(None, gt=0, description="η = c/λ0, with λ0 the measured sharpness at θ0")

    @model_validator(mode="after")
    def _one_lr(self):
        if (self.lr is None) == (self.c is None):
            raise ValueError("give exactly one of 'lr' (the learning rate) and 'c' (η = c/λ0)")
        return self


class GD(_OptimizerBase):
    """Full-batch gradient descent θ ← θ − η∇L(θ)."""

    name: Literal["gd"] = "gd"


class SGD(_OptimizerBase):
    """Mini-batch SGD; batches drawn without replacement each epoch from the optimizer seed."""

    name: Literal["sgd"] = "sgd"
    batch_size: int = Field(gt=0)
    seed: int = 0


class Momentum(_OptimizerBase):
    """Heavy ball v ← βv − η∇L, θ ← θ + v (Nesterov: gradient at θ + βv). Full batch."""

    name: Literal["momentum"] = "momentum"
    beta: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False


class Adam(_OptimizerBase):
    """Adam (Kingma & Ba) with bias correction; full batch."""

    name: Literal["adam"] = "adam"
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, ge=0)


class RMSProp(_OptimizerBase):
    """RMSProp ν ← β₂ν + (1−β₂)g², θ ← θ − η g/(√ν + ε); full batch."""

    name: Literal["rmsprop"] = "rmsprop"
    beta2: float = Field(0.99, ge=0, lt=1)
    eps: float = Field(1e-8, ge=0)


class DAL(_OptimizerBase):
    """Drift-adjusted learning rate (Rosca, Wu, Qin, Dherin, TMLR 2023, §5): full-batch GD whose step at t
    is η_t = min(2/v_t^p, max_lr), v_t = ‖H∇L‖/‖∇L‖ (one HVP per step), while start ≤ t < stop; the static
    ``lr`` outside that window and for p = 0 (plain GD)."""

    name: Literal["dal"] = "dal"
    p: float = Field(1.0, ge=0, description="the exponent p of the drift norm")
    max_lr: float = Field(5.0, gt=0, description="largest step size DAL may take")
    start: int = Field(0, ge=0, description="first adapted step")
    stop: int | None = Field(None, gt=0, description="first step after the adapted window (None: never)")


OptimizerSpec = Annotated[GD | SGD | Momentum | Adam | RMSProp | DAL, Field(discriminator="name")]


# -------------------------------------------------------------------------------------- measurement
class MeasurePlan(_Strict):
    """Which steps are measured, how many eigenvalues, which steps keep a checkpoint of θ."""

    every: int = Field(1, gt=0, description="loss, gradient norm and accuracy every this many steps")
    sharpness_every: int = Field(1, ge=0, description="top-k Hessian eigenvalues every this many steps (0: never)")
    k: int = Field(1, gt=0, description="number of top eigenvalues (sharpness, eig_2, ..)")
    eig_tol: float = Field(1e-4, gt=0, description="relative residual tolerance ‖Hu−λu‖ ≤ tol·λ of the eigen-solver (eigenvalues to ~tol²)")
    eig_maxiter: int = Field(100, gt=0)
    checkpoints: list[int] | int = Field(
        default_factory=list, description="steps whose θ is saved, or an interval (0 and the last step always)")
    test_every: int = Field(0, ge=0, description="test loss/accuracy every this many steps (0: never)")
    diverge_loss: float = Field(1e8, gt=0, description="a loss above this (or non-finite) ends the run as diverged")
    batch_samples: int | None = Field(
        None, gt=0, description="SGD: minibatches averaged for the batch sharpness at each sharpness step "
                                "(None: eosbench.batch_sharpness.DEFAULT_SAMPLES; ignored by full-batch optimizers)")


class ScoringPlan(_Strict):
    """How forecasts on this task are scored."""

    smoothing: float = Field(10.0, ge=0, description="σ in steps of the Gaussian that smooths measured series")
    horizon: int | None = Field(None, gt=0, description="steps ahead on the forecast track (default: a quarter of the run)")


class Sweep(_Strict):
    """A learning-rate family: one task per value, ids ``<id>@lr=<v>`` or ``<id>@c=<v>``."""

    lr: list[float] | None = None
    c: list[float] | None = None
    time: float | None = Field(
        None, gt=0, description="lr sweeps: every member runs the same gradient-flow time T = η·steps, so "
                                "steps = round(T/η); the file's steps (with optimizer.lr·steps = T) and its "
                                "step-counted measure/scoring intervals are those of optimizer.lr and scale by lr/η")

    @model_validator(mode="after")
    def _one(self):
        if (self.lr is None) == (self.c is None):
            raise ValueError("a sweep gives exactly one of 'lr' and 'c' as a list")
        if self.time is not None and self.lr is None:
            raise ValueError("sweep.time (an equal η·steps budget) needs an 'lr' sweep, not 'c'")
        return self

    @property
    def key(self) -> str:
        return "lr" if self.lr is not None else "c"

    @property
    def values(self) -> list[float]:
        return list(self.lr if self.lr is not None else self.c)


WIDTH_ARCHS = ("mlp", "cnn", "transformer", "uv", "deep-linear", "sparse-relu")
"""Architectures a held-out ``width`` applies to (mlp/cnn: the first hidden layer, the others scaled with it;
transformer: d_model, d_mlp scaled with it; the others: their ``width``)."""
DEPTH_ARCHS = ("mlp", "cnn", "transformer", "chain", "deep-linear")
"""Architectures a held-out ``depth`` applies to (mlp/cnn: hidden layers/stages; transformer: layers)."""
SUBSET_DATA = ("digits", "cifar10")


class HeldOut(_Strict):
    """The ranges a held-out variant of this task is drawn from (``eosbench run --held-out``,
    :mod:`eosbench.heldout`): η or c log-uniform in [low, high], width, depth and n uniform integers in
    [low, high], fresh initialization and data seeds. A range left out keeps the public task's value."""

    lr: tuple[float, float] | None = Field(None, description="η drawn log-uniformly from [low, high]")
    c: tuple[float, float] | None = Field(None, description="c (η = c/λ0) drawn log-uniformly from [low, high]")
    width: tuple[int, int] | None = Field(None, description=f"width drawn from [low, high] ({', '.join(WIDTH_ARCHS)})")
    depth: tuple[int, int] | None = Field(None, description=f"depth drawn from [low, high] ({', '.join(DEPTH_ARCHS)})")
    n: tuple[int, int] | None = Field(None, description="training examples drawn from [low, high]")
    subset: Literal["random"] | None = Field(
        None, description="'random': the training examples drawn at random with the data seed (digits, cifar10)")
    seed: bool = Field(True, description="draw fresh initialization and data seeds (and SGD's batch seed)")

    @model_validator(mode="after")
    def _ranges(self):
        for key in ("lr", "c", "width", "depth", "n"):
            value = getattr(self, key)
            if value is not None and (value[0] <= 0 or value[0] > value[1]):
                raise ValueError(f"held_out.{key} must be [low, high] with 0 < low <= high, got {list(value)}")
        return self

    def check(self, model, data, optimizer, sweep) -> None:
        """That every range applies to the task (a ValueError naming the ``held_out`` key otherwise)."""
        key = sweep.key if sweep is not None else ("lr" if optimizer.lr is not None else "c")
        other = "c" if key == "lr" else "lr"
        if getattr(self, other) is not None:
            raise ValueError(f"held_out.{other}: this task sets its learning rate by '{key}', so give a "
                             f"'{key}' range instead")
        if self.width is not None and model.arch not in WIDTH_ARCHS:
            raise ValueError(f"held_out.width: the {model.arch} architecture has no width "
                             f"(one of {', '.join(WIDTH_ARCHS)} has)")
        if self.depth is not None and model.arch not in DEPTH_ARCHS:
            raise ValueError(f"held_out.depth: the {model.arch} architecture has no depth "
                             f"(one of {', '.join(DEPTH_ARCHS)} has)")
        if self.n is not None and not hasattr(data, "n"):
            raise ValueError(f"held_out.n: the {data.name} data has no training examples to draw")
        if self.subset is not None and data.name not in SUBSET_DATA:
            raise ValueError(f"held_out.subset: only {' and '.join(SUBSET_DATA)} data draw a subset, not {data.name}")


# --------------------------------------------------------------------------------------------- task
class TaskSpec(_Strict):
    """A standardized task: everything that decides a measured trajectory."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._=@+-]*$")
    version: int = Field(1, ge=1)
    tier: Literal["tiny", "small", "full"]
    description: str = ""
    data: DataSpec
    model: ModelSpec
    loss: LossName
    optimizer: OptimizerSpec
    steps: int = Field(gt=0)
    measure: MeasurePlan = MeasurePlan()
    scoring: ScoringPlan = ScoringPlan()
    dtype: Literal["float64", "float32"] = "float64"
    device: Literal["cpu", "cuda"] = "cpu"
    family: str | None = Field(None, description="the sweep family this task was expanded from")
    family_params: dict[str, float] = Field(default_factory=dict, description="e.g. depth, width of a phase family")
    sweep: Sweep | None = None
    held_out: HeldOut | None = Field(None, description="ranges of the held-out variants (not part of the hash)")

    @field_validator("held_out")
    @classmethod
    def _held_out_applies(cls, value: HeldOut | None, info: ValidationInfo) -> HeldOut | None:
        if value is not None and all(k in info.data for k in ("model", "data", "optimizer")):
            value.check(info.data["model"], info.data["data"], info.data["optimizer"], info.data.get("sweep"))
        return value

    @model_validator(mode="after")
    def _equal_time(self):
        time = self.sweep.time if self.sweep is not None else None
        if time is None:
            return self
        if self.optimizer.lr is None or self.steps != round(time / self.optimizer.lr):
            raise ValueError(f"sweep.time = {time:g}: the file's steps must be round(time / optimizer.lr) "
                             f"(its reference member), got steps {self.steps} at lr {self.optimizer.lr}")
        if self.held_out is not None:
            raise ValueError("sweep.time: held-out variants of an equal-time sweep are not supported")
        if min(round(time / v) for v in self.sweep.values) < 1:
            raise ValueError(f"sweep.time = {time:g} gives a member no steps")
        return self

    @property
    def lr_is_relative(self) -> bool:
        return self.optimizer.c is not None

    def forecast_origins(self) -> list[int]:
        """Steps the forecast track starts from: 25, 50 and 75 % of the run."""
        return [round(self.steps * f) for f in FORECAST_FRACTIONS]

    @property
    def horizon(self) -> int:
        """Steps ahead on the forecast track."""
        return self.scoring.horizon or max(1, self.steps // 4)

    def checkpoint_steps(self) -> list[int]:
        """Steps at which θ is saved: the plan's, the forecast origins, 0 and the last step."""
        plan = self.measure.checkpoints
        steps = set(range(0, self.steps + 1, plan)) if isinstance(plan, int) else set(plan)
        steps |= {0, self.steps, *self.forecast_origins()}
        return sorted(s for s in steps if 0 <= s <= self.steps)

    def expand(self) -> list[TaskSpec]:
        """One task per sweep value (ids ``id@c=2.5``); a task without a sweep is its own expansion."""
        if self.sweep is None:
            return [self]
        out = []
        for value in self.sweep.values:
            opt = self.optimizer.model_copy(update={"lr": None, "c": None, self.sweep.key: value})
            update = {"id": f"{self.id}@{self.sweep.key}={value:g}", "optimizer": type(opt).model_validate(opt.model_dump()),
                      "family": self.id, "sweep": None}
            if self.sweep.time is not None:
                update.update(self._equal_time_plan(value))
            out.append(self.model_copy(update=update))
        return out

    def variant(self, *, seed: int | None = None, dtype: str | None = None) -> TaskSpec:
        """The same task from another initialization seed (id ``<id>+seed=1``) or in another precision (id
        ``<id>+float32``): the replicas behind the noise floor and the float32 twins (a sweep member's family
        becomes ``<family>+seed=1`` / ``<family>+float32``, so families are never mixed)."""
        if (seed is None) == (dtype is None):
            raise ValueError("a variant changes exactly one of seed and dtype")
        suffix = f"+seed={seed}" if seed is not None else f"+{dtype}"
        update: dict = {"id": self.id + suffix, "family": self.family + suffix if self.family else None}
        if seed is not None:
            update["model"] = self.model.model_copy(update={"seed": seed})
            update["description"] = f"{self.description} (initialization seed {seed})".strip()
        else:
            update["dtype"] = dtype
            update["description"] = f"{self.description} (in {dtype})".strip()
        return self.model_copy(update=update)

    def _equal_time_plan(self, lr: float) -> dict:
        """The member at η = ``lr`` of an equal-time sweep: steps = round(T/η), and the plan's step counts
        (row, sharpness, test and checkpoint intervals, smoothing σ, horizon) scaled by r = lr_ref/η, so every
        member is measured at the same gradient-flow times."""
        r = self.optimizer.lr / lr

        def scaled(n: int) -> int:
            return max(1, round(n * r)) if n else 0

        plan = self.measure
        checkpoints = scaled(plan.checkpoints) if isinstance(plan.checkpoints, int) else [round(c * r) for c in plan.checkpoints]
        measure = plan.model_copy(update={"every": scaled(plan.every), "sharpness_every": scaled(plan.sharpness_every),
                                          "test_every": scaled(plan.test_every), "checkpoints": checkpoints})
        scoring = self.scoring.model_copy(update={"smoothing": self.scoring.smoothing * r,
                                                  "horizon": scaled(self.scoring.horizon) if self.scoring.horizon else None})
        return {"steps": round(self.sweep.time / lr), "measure": measure, "scoring": scoring}


def normalized(spec: TaskSpec) -> dict:
    """The fields that decide the numbers, with defaults filled in (id, text, scoring and held-out ranges
    excluded).
    ``measure.batch_samples`` counts for SGD only (its default filled in there, left out elsewhere)."""
    out = spec.model_dump(mode="json", exclude={"id", "version", "tier", "description", "scoring",
                                                  "family", "family_params", "sweep", "held_out"})
    if spec.optimizer.name == "sgd":
        out["measure"]["batch_samples"] = spec.measure.batch_samples or DEFAULT_SAMPLES
    else:
        out["measure"].pop("batch_samples")
    return out


def spec_hash(spec: TaskSpec, backend: str = "torch") -> str:
    """A stable 16-hex-digit hash of the normalized spec and the backend that measures it."""
    payload = json.dumps({"spec": normalized(spec), "backend": backend}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------- predictor
class PredictorManifest(_Strict):
    """``predictor.yaml`` of a predictor folder (``baselines/<name>/`` or ``submissions/<name>/``)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="unique, lower-case, dashes")
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$", description="MAJOR.MINOR.PATCH; bump MINOR when numbers may change")
    authors: list[str] = Field(min_length=1)
    paper: str = Field(description="link or citation of the theory")
    description: str
    entry: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", description="module:Class inside the folder")
    backends: list[Literal["torch", "jax"]] = Field(default_factory=lambda: ["torch"])
    tracks: list[Literal["trajectory", "forecast", "phase"]] = Field(default_factory=lambda: ["trajectory", "forecast"])
    budget_seconds: float = Field(600.0, gt=0, description="wall-clock budget per task")
