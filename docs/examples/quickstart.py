# %% [markdown]
# # eosbench from Python
#
# A notebook in percent format (open it in VS Code or Jupyter with jupytext, or run it as a script:
# `python docs/examples/quickstart.py`). The tests execute it on a small task. It measures into your
# store (`$EOSBENCH_HOME`, else the user cache folder) exactly as `eosbench measure` and `eosbench run` do.

# %%
import os

import eosbench

TASK = os.environ.get("EOSBENCH_EXAMPLE_TASK", "digits-mlp-tanh-eos")  # the tests pick a smaller task
PREDICTORS = ["eos-clamp", "stability-rule"]

# %% [markdown]
# ## What there is to run
# One row per task of the tiny suite, and one per predictor (read from the manifests, no code imported).

# %%
tasks = eosbench.list_tasks(suite="tiny")
print(tasks[["tier", "model", "optimizer", "lr", "steps"]].head(10).to_string())
print(eosbench.list_predictors()[["version", "tracks"]].to_string())

# %% [markdown]
# ## A measured run as a DataFrame
# Indexed by step: `loss`, `sharpness` (the top Hessian eigenvalue, measured every few steps; NaN in
# between) and the other measured columns. `attrs` holds the learning rate and the stability threshold
# 2/η, so `ηS/2 = sharpness / threshold` is 1 at the edge of stability.

# %%
frame = eosbench.load_trajectory(TASK)
sharpness = frame["sharpness"].dropna()
threshold = frame.attrs["threshold"]
print(f"{TASK}: {len(frame)} steps, η = {frame.attrs['lr']:.4g}, outcome {frame.attrs['outcome']}")
print(f"largest sharpness {sharpness.max():.4g} against the threshold {threshold:.4g} "
      f"(ηS/2 up to {sharpness.max() / threshold:.3f})")
crossed = sharpness[sharpness >= threshold]
print("first measured at the edge of stability at step", crossed.index[0] if len(crossed) else "never")

# %% [markdown]
# ## Forecasts scored against it
# One row per predictor, track and task: the status, the regime, the score (bounded skill against gradient
# flow in [-1, 1], higher is better; docs/scoring.md), each metric (errors: lower is better) and the cost
# as a ratio to the gradient-descent run. The full result records are in `attrs`.

# %%
scores = eosbench.run(PREDICTORS, tasks=[TASK], tracks=["trajectory"])
columns = [c for c in ("predictor", "task", "status", "regime", "score", "sharpness_error", "loss_error",
                       "skill_sharpness_error", "cost_cost_ratio") if c in scores.columns]
print(scores[columns].to_string(index=False))
assert (scores["status"] == "ok").all(), scores[["predictor", "status", "error"]]

# %% [markdown]
# ## A figure
# The measured sharpness with the 2/η line (matplotlib; `eosbench plot TASK -o run.png` draws the same).

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(6, 3.2), constrained_layout=True)
ax.plot(sharpness.index, sharpness.values, label="sharpness")
ax.axhline(threshold, color="k", ls="--", lw=1, label="2/η")
ax.set(xlabel="step", ylabel="eigenvalue", title=TASK)
ax.legend()
fig.savefig(os.environ.get("EOSBENCH_EXAMPLE_FIGURE", "quickstart.png"), dpi=100)
