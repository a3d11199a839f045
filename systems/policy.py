"""policy: a trained policy's network and its file, shared by training (``qtg.rl``),
export (``qtg.export``) and the kind that trades with it (``strategies.rl_policy``).

The network is an MLP: ``h = tanh(x @ W_i + b_i)`` for each hidden layer, then
``logits = h @ W_out + b_out``; the action is the argmax of the logits (the most likely
action; ties go to the lowest). :func:`forward` computes it with :func:`dense`, the layer
the training's network (``qtg.rl.ppo.ActorCritic``) uses too, so a policy acts in a run
exactly as it did in training.

A policy file (``policy.npz``, NumPy's format without pickles) holds the layers as
``kernel_0, bias_0, ..., kernel_{n-1}, bias_{n-1}`` (the last is the output layer) and a
JSON string ``meta``: the observation spec it was trained on (its task's, :func:`spec_for`:
``systems.features.SPEC`` as a dict, plus the task's own features; its ``version`` and
feature names checked on loading), the task and its action count.
:func:`read_policy` reads it (``qtg.rl.checkpoint.write_policy`` writes it) and also reads an ONNX file written by ``qtg.export`` (the same layers as
initializers, the meta as the model's metadata).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from systems.features import SPEC, Feature, ObservationSpec

Layers = list[tuple[np.ndarray, np.ndarray]]


def dense(x: jax.Array, w: jax.Array, b: jax.Array) -> jax.Array:
    """A layer: ``x @ w + b`` for x [..., in], w [in, out], b [out]."""
    return jnp.dot(x, w) + b


def forward(layers, obs: jax.Array) -> jax.Array:
    """The logits of observations ``obs`` f32[..., F] under ``layers`` [(kernel, bias)]."""
    x = obs
    for i, (w, b) in enumerate(layers):
        x = dense(x, w, b)
        if i < len(layers) - 1:
            x = jnp.tanh(x)
    return x


def act(layers, obs: jax.Array) -> jax.Array:
    """The policy's action for each observation: the argmax of its logits. i32[...]"""
    return jnp.argmax(forward(layers, obs), axis=-1).astype(jnp.int32)


def act_continuous(layers, obs: jax.Array) -> jax.Array:
    """A continuous policy's action for each observation: its outputs (the mean of the
    Gaussian it was trained with) clipped to [-1, 1]. f32[..., A]"""
    return jnp.clip(forward(layers, obs), -1.0, 1.0)


TASK_FEATURES: dict[str, tuple[Feature, ...]] = {
    "trading": (),
    "execution": (
        Feature("remaining", 1.0, 1.0, "shares still to trade / the order's quantity"),
        Feature("time_left", 1.0, 1.0, "ticks left in the episode / its ticks"),
    ),
    "market_making": (
        Feature("time_left", 1.0, 1.0, "ticks left in the episode / its ticks"),
    ),
    "portfolio": (),
}
"""The features a task appends to ``systems.features.SPEC`` (``qtg.rl.execution`` and
``qtg.rl.market_making`` compute their tasks'): a policy of the task reads exactly these,
in this order."""

CONTINUOUS = frozenset({"portfolio"})
"""Tasks whose actions are continuous: the network's outputs are a Gaussian's mean, and the
action is that mean clipped to [-1, 1] (:func:`act_continuous`), not an argmax."""

PER_SYMBOL = frozenset({"portfolio"})
"""Tasks that observe every symbol: ``SPEC``'s features once per symbol, symbol by symbol
(named ``<feature>_<symbol index>``), then the task's own."""


def task_of(meta: dict) -> str:
    """The task of a policy's meta (a policy written before tasks had names: trading)."""
    return meta.get("task", "trading")


def spec_for(task: str, symbols: int = 1) -> ObservationSpec:
    """The observation spec of a task's policies: ``SPEC``'s features (for a task of
    :data:`PER_SYMBOL`, once for each of the market's ``symbols``), then the task's own
    (:data:`TASK_FEATURES`), under ``SPEC``'s version. KeyError for an unknown task."""
    market = SPEC.features
    if task in PER_SYMBOL:
        market = tuple(Feature(f"{f.name}_{s}", f.scale, f.clip, f"{f.doc} (symbol {s})")
                       for s in range(symbols) for f in SPEC.features)
    return ObservationSpec(version=SPEC.version, features=market + TASK_FEATURES[task])


def spec_of(meta: dict) -> ObservationSpec:
    """The observation spec a policy's meta names: its task's, for its ``symbols``."""
    return spec_for(task_of(meta), int(meta.get("symbols", 1)))


def meta_for(task: str, actions: int, symbols: int = 1, **extra) -> dict:
    """The meta of a policy file: the task's observation spec, the task and the action count
    (a continuous task's: the action's size), and for a task of :data:`PER_SYMBOL` the
    market's ``symbols``."""
    meta = {"spec": spec_for(task, symbols).to_dict(), "task": task, "actions": int(actions)}
    if task in PER_SYMBOL:
        meta["symbols"] = int(symbols)
    return meta | extra


class PolicyError(ValueError):
    """A policy file that cannot be used: missing, unreadable, or of another spec."""


def read_policy(path: str | os.PathLike) -> tuple[Layers, dict]:
    """``(layers, meta)`` of a policy file (``policy.npz``), a directory holding one (a
    training run's), or an ONNX file written by ``qtg.export``. Raises PolicyError with a
    line naming the path and the problem; an observation spec whose version is not this
    code's is refused."""
    p = Path(path)
    if p.is_dir():
        p = p / "policy.npz"
    if not p.is_file():
        raise PolicyError(f"{path}: no such policy file (a policy.npz, a training run's directory or an .onnx file)")
    try:
        if p.suffix == ".onnx":
            layers, meta = _read_onnx(p)
        else:
            with np.load(p, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                n = sum(1 for k in z.files if k.startswith("kernel_"))
                layers = [(z[f"kernel_{i}"], z[f"bias_{i}"]) for i in range(n)]
    except PolicyError:
        raise
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: say which and why, in one line
        raise PolicyError(f"{path}: not a policy file ({type(e).__name__}: {e})") from None
    spec = check_meta(meta, str(path))
    if not layers or layers[0][0].shape[0] != spec.size:
        raise PolicyError(f"{path}: the network's input is {layers[0][0].shape[0] if layers else 0} wide, "
                          f"the observation has {spec.size} features")
    return layers, meta


def check_meta(meta: dict, where: str) -> ObservationSpec:
    """The policy's observation spec is this code's for its task (same version, same
    features): that spec."""
    task = task_of(meta)
    if task not in TASK_FEATURES:
        raise PolicyError(f"{where}: unknown task '{task}'; this qtg knows {', '.join(TASK_FEATURES)}")
    want = spec_of(meta)
    spec = meta.get("spec", {})
    if spec.get("version") != SPEC.version:
        raise PolicyError(f"{where}: observation spec version {spec.get('version')} does not match this qtg's "
                          f"version {SPEC.version}; retrain the policy (python -m qtg.train)")
    names = [f.get("name") for f in spec.get("features", [])]
    if names != list(want.names):
        raise PolicyError(f"{where}: observation features {names} differ from this qtg's {list(want.names)}")
    return want


def _read_onnx(p: Path) -> tuple[Layers, dict]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(p))
    props = {m.key: m.value for m in model.metadata_props}
    if "qtg_policy" not in props:
        raise PolicyError(f"{p}: an ONNX file without qtg's policy metadata (write it with python -m qtg.export)")
    meta = json.loads(props["qtg_policy"])
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    n = sum(1 for k in init if k.startswith("kernel_"))
    return [(init[f"kernel_{i}"], init[f"bias_{i}"]) for i in range(n)], meta
