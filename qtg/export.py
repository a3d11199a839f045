"""``python -m qtg.export POLICY [-o FILE]``: a trained policy as an ONNX model.

``POLICY`` is a training run's directory, its ``policy.npz`` or its ``checkpoint.npz``'s
run directory (``systems.policy.read_policy``). The model is built with ``onnx.helper``
from the policy's layers (no converter): input ``obs`` float32 ``[batch, F]`` (the
observation contract of the policy's task, ``systems.policy.spec_for``), outputs ``logits`` float32
``[batch, actions]`` and ``action`` int64 ``[batch]`` (their argmax, the action the policy
takes; for a continuous task's policy, the portfolio's, ``action`` is float32 ``[batch,
actions]``, the outputs clipped to [-1, 1]); the policy's meta (observation spec, task, actions) is the model's metadata
``qtg_policy``, so ``rl_policy`` can trade with the ONNX file itself. After writing, the
model is run in onnxruntime on ``--check`` observations drawn inside the observation
bounds and compared with the JAX policy; the result is printed as JSON, and a difference
above 1e-5 is an error (exit 1).

Examples::

    python -m qtg.export outputs/train/2026-12-07/10-00-00              # writes policy.onnx there
    python -m qtg.export outputs/train/2026-12-07/10-00-00/policy.npz -o /tmp/p.onnx
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

import qtg  # noqa: F401  (enables x64 before any array exists)
from qtg.core.files import atomic_open
from systems.policy import CONTINUOUS, Layers, PolicyError, act_continuous, forward, read_policy, spec_of, task_of

OPSET = 17
TOLERANCE = 1e-5


def to_onnx(layers: Layers, meta: dict):
    """The ONNX model of a policy: MatMul, Add and Tanh per layer, ArgMax at the end (Clip
    to [-1, 1] for a continuous task's policy)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits, nodes = [], []
    x = "obs"
    for i, (w, b) in enumerate(layers):
        inits += [numpy_helper.from_array(np.asarray(w, np.float32), f"kernel_{i}"),
                  numpy_helper.from_array(np.asarray(b, np.float32), f"bias_{i}")]
        last = i == len(layers) - 1
        nodes += [helper.make_node("MatMul", [x, f"kernel_{i}"], [f"matmul_{i}"]),
                  helper.make_node("Add", [f"matmul_{i}", f"bias_{i}"], ["logits" if last else f"pre_{i}"])]
        if not last:
            nodes.append(helper.make_node("Tanh", [f"pre_{i}"], [f"hidden_{i}"]))
            x = f"hidden_{i}"
    actions = int(np.asarray(layers[-1][1]).shape[0])
    if task_of(meta) in CONTINUOUS:
        inits += [numpy_helper.from_array(np.float32(-1.0), "low"), numpy_helper.from_array(np.float32(1.0), "high")]
        nodes.append(helper.make_node("Clip", ["logits", "low", "high"], ["action"]))
        action = helper.make_tensor_value_info("action", TensorProto.FLOAT, ["batch", actions])
    else:
        nodes.append(helper.make_node("ArgMax", ["logits"], ["action"], axis=1, keepdims=0))
        action = helper.make_tensor_value_info("action", TensorProto.INT64, ["batch"])
    graph = helper.make_graph(
        nodes, "qtg_policy",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", int(np.asarray(layers[0][0]).shape[0])])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", actions]), action],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="qtg")
    model.ir_version = 8  # read by every onnxruntime since 1.10
    helper.set_model_props(model, {"qtg_policy": json.dumps(meta)})
    onnx.checker.check_model(model)
    return model


def write_onnx(layers: Layers, meta: dict, path: str | Path) -> Path:
    path = Path(path)
    model = to_onnx(layers, meta)
    with atomic_open(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def run_onnx(path: str | Path, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(logits, action)`` of the ONNX model at ``path`` in onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, action = session.run(["logits", "action"], {"obs": np.asarray(obs, np.float32)})
    return logits, action


def compare(layers: Layers, path: str | Path, obs: np.ndarray, continuous: bool = False) -> dict:
    """The ONNX model against the JAX policy on ``obs``: the largest logit difference and
    how many actions differ (a continuous policy's: by more than the tolerance)."""
    logits, action = run_onnx(path, obs)
    x = np.asarray(obs, np.float32)
    want = np.asarray(forward(layers, x))
    if continuous:
        differ = (np.abs(action - np.asarray(act_continuous(layers, x))) > TOLERANCE).any(-1)
    else:
        differ = action != want.argmax(-1)
    return {"observations": len(obs), "max_abs_diff": float(np.max(np.abs(logits - want))),
            "actions_differ": int(differ.sum())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m qtg.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("policy", help="a training run's directory or its policy.npz")
    ap.add_argument("-o", "--output", help="the ONNX file (default: policy.onnx beside the policy)")
    ap.add_argument("--check", type=int, default=1000, help="observations to compare in onnxruntime (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the checked observations")
    args = ap.parse_args(argv)
    try:
        layers, meta = read_policy(args.policy)
    except PolicyError as e:
        print(f"qtg.export: {e}", file=sys.stderr)
        return 2
    src = Path(args.policy)
    out = Path(args.output) if args.output else (src if src.is_dir() else src.parent) / "policy.onnx"
    if not out.parent.is_dir():
        print(f"qtg.export: -o {out}: no such directory {out.parent}", file=sys.stderr)
        return 2
    write_onnx(layers, meta, out)
    rng = np.random.default_rng(args.seed)
    spec = spec_of(meta)  # the task's observation (read_policy checked it)
    obs = rng.uniform(-spec.high, spec.high, (max(args.check, 1), spec.size)).astype(np.float32)
    report = {"onnx": str(out), "opset": OPSET, **compare(layers, out, obs, task_of(meta) in CONTINUOUS)}
    print(json.dumps(report))
    if report["max_abs_diff"] > TOLERANCE:
        print(f"qtg.export: the ONNX model differs from the policy by {report['max_abs_diff']:.3g} "
              f"(> {TOLERANCE})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
