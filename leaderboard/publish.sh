#!/usr/bin/env bash
# Every published record in leaderboard/results/, from a fresh store: what `eosbench run ... --publish`
# was given for each suite. Run from the repository root in an environment with eosbench installed
# (pip install -e .); about 2 hours on 2 cores. Then: python docs/findings.py && eosbench leaderboard build
set -euo pipefail
cd "$(dirname "$0")/.."
run() { eosbench run "$@" --publish; }

# full-batch GD: every theory of gradient descent at the edge of stability, and the null models
run gradient-flow eos-clamp stability-rule linearized persistence principal-flow self-stabilization \
    central-flow edge-flow rod-flow uv-fixed-point threshold-neuron gd-replay constant-edge --suite tiny
run phase-rules break-even --suite tiny
# the noise floor (seeds 1 and 2 of every seeded tiny task) and the float32 twins of tiny's GD tasks
run gradient-flow eos-clamp stability-rule linearized persistence principal-flow self-stabilization \
    central-flow edge-flow rod-flow uv-fixed-point threshold-neuron gd-replay constant-edge --suite tiny-seeds
run gradient-flow eos-clamp stability-rule linearized persistence principal-flow self-stabilization \
    central-flow edge-flow rod-flow uv-fixed-point threshold-neuron gd-replay constant-edge --suite tiny-float32
# momentum and adaptive methods at their edges (the reference is each optimizer's stable flow)
run gradient-flow central-flow constant-edge persistence gd-replay --suite adaptive
# SGD: batch sharpness at 2/η (edge of stochastic stability) and the stochastic sharpness gap
run gradient-flow eos-clamp eoss sharpness-gap gd-replay break-even --suite break-even
# sweeps scored by their phase labels and critical values
run threshold-neuron --suite xy-sweep
run stability-rule gradient-flow gd-replay --suite nar-sastry
run phase-rules uv-fixed-point --suite phase-diagram
