"""Training checkpoints and policy files, in NumPy's ``.npz`` format (no pickles), each
written atomically (a temporary file renamed over the old one, ``qtg.core.files``).

``checkpoint.npz`` holds every array of the trainer's state (``qtg.rl.ppo.Runner``: the
network, the optimiser with its step count, every environment's market, the PRNG keys as
their key data) under ``leaf_<i>`` in the order of ``jax.tree.leaves``, the learning
history so far (``history_<metric>`` ``[seeds, updates]``), and a JSON string ``meta``:
format version, updates done, the config it was trained with, the observation spec, and
which leaves are PRNG keys. Loading rebuilds the state onto a fresh trainer's state of the
same config (the template fixes the tree), checking every shape and dtype, so a resumed
training continues bit for bit.

``policy.npz`` is the deployable policy (``systems.policy``'s format): the actor's layers
and its meta (observation spec, task, actions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

from qtg.core.files import atomic_open
from qtg.core.snapshot import is_key
from systems.policy import Layers, spec_for

FORMAT = 1
IGNORED_ON_RESUME = ("train.updates", "train.chunk", "train.checkpoint", "train.keep", "train.plot", "train.resume",
                     "hooks", "ui")
"""Config keys a resumed training may change: how long it goes on and what it writes."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: missing, damaged, or of another config."""


def write_policy(path: str | Path, layers: Layers, meta: dict) -> Path:
    """Write a policy file (``systems.policy``'s format) atomically."""
    path = Path(path)
    arrays = {}
    for i, (w, b) in enumerate(layers):
        arrays[f"kernel_{i}"], arrays[f"bias_{i}"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
    with atomic_open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    return path


def save(path: str | Path, runner: Any, history: dict[str, np.ndarray], updates: int, config: dict) -> Path:
    """Write the trainer's state after ``updates`` updates, with its history and config."""
    path = Path(path)
    arrays, keys = {}, {}
    for i, leaf in enumerate(jax.tree.leaves(runner)):
        if is_key(leaf):
            keys[str(i)] = str(jax.random.key_impl(leaf))
            arrays[f"leaf_{i}"] = np.asarray(jax.random.key_data(leaf))
        else:
            arrays[f"leaf_{i}"] = np.asarray(leaf)
    for name, h in history.items():
        arrays[f"history_{name}"] = np.asarray(h)
    symbols = len(config.get("market", {}).get("symbols", [None]))
    spec = spec_for(config.get("env", {}).get("task", "trading"), symbols)  # the task's observation
    meta = {"format": FORMAT, "updates": int(updates), "config": config, "spec": spec.to_dict(), "keys": keys}
    with atomic_open(path, "wb") as f:
        np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
    return path


def checkpoint_path(path: str | Path) -> Path:
    """The checkpoint file of ``path``: the file itself, or a training run's directory."""
    p = Path(path)
    return p / "checkpoint.npz" if p.is_dir() else p


def read_meta(path: str | Path) -> dict:
    p = checkpoint_path(path)
    if not p.is_file():
        raise CheckpointError(f"train.resume: {path}: no checkpoint there (a run directory or its checkpoint.npz)")
    try:
        with np.load(p, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
    except Exception as e:  # noqa: BLE001 - a truncated or foreign file: one line naming it
        raise CheckpointError(f"train.resume: {p}: not a qtg checkpoint ({type(e).__name__}: {e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"train.resume: {p}: checkpoint format {meta.get('format')}, this qtg reads {FORMAT}")
    return meta


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_config(saved: dict, config: dict, where: str) -> None:
    """The config of the resumed training is the checkpoint's, except for the keys of
    :data:`IGNORED_ON_RESUME`: CheckpointError naming the first key that differs."""
    a, b = _flat(saved), _flat(config)
    for key in sorted(set(a) | set(b)):
        if any(key == k or key.startswith(k + ".") for k in IGNORED_ON_RESUME):
            continue
        if a.get(key) != b.get(key):
            raise CheckpointError(f"train.resume: {where} was trained with {key}={a.get(key)!r}, this config has "
                                  f"{b.get(key)!r}; resume with the same config (only train.updates, train.chunk "
                                  f"and what is written may change)")


def load(path: str | Path, template: Any, config: dict) -> tuple[Any, dict[str, np.ndarray], int]:
    """``(runner, history, updates)`` from a checkpoint, onto ``template`` (a fresh
    trainer state of ``config``). CheckpointError with one line when it does not fit."""
    p = checkpoint_path(path)
    meta = read_meta(p)
    check_config(meta["config"], config, str(p))
    leaves, treedef = jax.tree.flatten(template)
    with np.load(p, allow_pickle=False) as z:
        if sum(1 for k in z.files if k.startswith("leaf_")) != len(leaves):
            raise CheckpointError(f"train.resume: {p}: its state does not fit this trainer's")
        out = []
        for i, leaf in enumerate(leaves):
            data = z[f"leaf_{i}"]
            if is_key(leaf):
                want = np.asarray(jax.random.key_data(leaf))
                if data.shape != want.shape or data.dtype != want.dtype:
                    raise CheckpointError(f"train.resume: {p}: PRNG key {i} does not fit this trainer's")
                out.append(jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf)))
            else:
                if data.shape != leaf.shape or data.dtype != leaf.dtype:
                    raise CheckpointError(f"train.resume: {p}: array {i} is {data.dtype}{list(data.shape)}, this "
                                          f"trainer's is {leaf.dtype}{list(leaf.shape)}")
                out.append(jax.numpy.asarray(data))
        history = {k[len("history_"):]: z[k] for k in z.files if k.startswith("history_")}
    return jax.tree.unflatten(treedef, out), history, int(meta["updates"])
