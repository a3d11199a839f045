"""Save and resume the whole world at a tick boundary, bit-identically.

A snapshot holds everything the next tick depends on: the config (plain data), the
world's static layout (as a fingerprint), every leaf of the params and of the state (the
PRNG key included), the engine's books with every resting order's queue position (the
engine's ``state_dict``), the tick, and the cursors of the hooks that keep one (each hook
with a ``name`` and ``state_dict``, keyed by name). Resuming builds the world afresh from
the snapshot's config, overwrites every leaf, loads the engine and the hooks, and the run
continues exactly as if it had never stopped: same fills, wallets, state, fill hash.

File format (version 1; no pickle, all integers little-endian)::

    offset  size  field
    0       8     magic  b"QTGSNAP\\0"
    8       4     u32    format version
    12      4     u32    reserved (0)
    16      8     u64    total file length in bytes
    24      32           SHA-256 of bytes [8, 24) followed by bytes [56, end):
                         everything after the magic except the digest itself
    56      8     u64    header length H
    64      H            header: UTF-8 JSON
    64+H    ...          zero padding to a multiple of 64, then the data: raw C-order
                         array bytes, each at a 64-byte aligned offset

The header holds ``format``, ``qtg_version``, ``tick``, ``created`` (UTC, ISO 8601),
``config`` (``qtg.reports.summary.config_dict``), ``run_dir``, ``world`` (the static layout field
by field, its SHA-256 fingerprint, the names of the state and params leaves, the PRNG
implementation of key leaves), ``engine`` and ``hooks`` (nested plain data in which an
array appears as ``{"__array__": name}``) and ``arrays``: name -> ``dtype`` (NumPy type
string), ``shape``, ``offset`` (from the start of the data) and ``nbytes``. A PRNG key leaf
is stored as its key data (``jax.random.key_data``). The first 56 bytes keep this layout
in every format version, so any version can be recognised and refused clearly.

Files are written atomically (:func:`qtg.core.files.atomic_open`: a temporary file in
the same folder, fsync, rename), so a crash or a full disk leaves the previous snapshot
intact. :func:`read_snapshot` refuses, with one line saying what is wrong and what to do,
a missing, truncated, corrupted (checksum) or foreign (magic) file, another format
version, another qtg version; :meth:`Snapshot.restore` refuses a world whose layout
differs.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import struct
import threading
from pathlib import Path
from typing import Any, Iterable, Sequence

import jax
import numpy as np

import qtg
from qtg.core.config import Config, ConfigError
from qtg.core.files import atomic_open

log = logging.getLogger("qtg")

MAGIC = b"QTGSNAP\x00"
"""First 8 bytes of every snapshot file."""
FORMAT_VERSION = 1
"""Version of the file layout this qtg writes and reads."""
SUFFIX = ".qtgsnap"
"""File name suffix of snapshots."""
WORLD_SECTIONS = ("market", "fundamentals", "news", "population", "engine", "risk", "seed")
"""Config keys that define the world: a resumed run takes them from the snapshot."""

_PREFIX = struct.Struct("<8sIIQ32s")  # magic, version, reserved, total length, digest
_HLEN = struct.Struct("<Q")
_DATA = _PREFIX.size + _HLEN.size  # the header starts here (64)
_ALIGN = 64
_ARRAY = "__array__"


class SnapshotError(RuntimeError):
    """A snapshot that cannot be written or resumed; the message is one line saying what
    is wrong and what to do."""


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


# ---------------------------------------------------------------------- plain data
def _encode(obj: Any, name: str, arrays: dict[str, np.ndarray]) -> Any:
    """``obj`` as JSON-able data, its arrays moved into ``arrays`` (keyed by their path)."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"{name}: dict keys must be strings, got {k!r}")
            out[k] = _encode(v, f"{name}/{k}", arrays)
        if _ARRAY in out:
            raise TypeError(f"{name}: the key {_ARRAY!r} is reserved")
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, f"{name}/{i}", arrays) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and not isinstance(obj, np.generic):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    a = np.asarray(obj)
    if a.dtype.kind in "OV" or a.dtype.names:
        raise TypeError(f"{name}: arrays of dtype {a.dtype} cannot be saved (use plain columns)")
    if name in arrays:
        raise TypeError(f"{name}: two values saved under one name")
    arrays[name] = a
    return {_ARRAY: name}


def _decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`_encode` (lists stay lists)."""
    if isinstance(obj, dict):
        if set(obj) == {_ARRAY}:
            return arrays[obj[_ARRAY]]
        return {k: _decode(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    return obj


def is_key(leaf) -> bool:
    """A PRNG key array (stored as its key data)."""
    return jax.dtypes.issubdtype(getattr(leaf, "dtype", np.float64), jax.dtypes.prng_key)


def _leaves(tree, prefix: str) -> list[tuple[str, Any]]:
    return [(prefix + jax.tree_util.keystr(p), leaf) for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _static_fields(static) -> dict[str, str]:
    """The static layout field by field (reprs: they fix every shape)."""
    return {f.name: repr(getattr(static, f.name)) for f in dataclasses.fields(static)}


def _fingerprint(fields: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def hook_states(hooks: Iterable[Any]) -> dict[str, dict]:
    """``{name: hook.state_dict()}`` of every hook with a ``name`` and a ``state_dict``."""
    out: dict[str, dict] = {}
    for h in hooks:
        name = getattr(h, "name", None)
        if name is None or not callable(getattr(h, "state_dict", None)):
            continue
        if name in out:
            raise ValueError(f"two hooks are named {name!r}; a snapshot keys hook cursors by name")
        out[name] = h.state_dict()
    return out


# ---------------------------------------------------------------------- writing
def save_snapshot(path, sim, cfg: Config, hooks: Sequence[Any] = (), run_dir=None) -> Path:
    """Write the world of ``sim`` (at its current tick boundary) to ``path``, atomically.

    Args:
        path: file to write (its folder is created).
        sim: the :class:`~qtg.core.sim.Simulation`; nothing of it changes.
        cfg: the run's config (stored as plain data; the world sections matter on resume).
        hooks: hooks whose cursors go in (those with ``name`` and ``state_dict``; a
            hook's ``state_dict`` may flush, e.g. commit everything through this tick).
        run_dir: the run directory the snapshot belongs to (a resumed run continues there).
    Returns:
        ``path`` as a Path.
    """
    from qtg.core.config import config_dict

    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    keys: dict[str, str] = {}
    names: dict[str, list[str]] = {}
    for part, tree in (("state", sim.state), ("params", sim.params)):
        names[part] = []
        for name, leaf in _leaves(tree, part):
            names[part].append(name)
            if is_key(leaf):
                keys[name] = str(jax.random.key_impl(leaf))
                arrays[name] = np.asarray(jax.random.key_data(leaf))
            else:
                arrays[name] = np.asarray(leaf)
    fields = _static_fields(sim.static)
    header = {
        "format": FORMAT_VERSION,
        "qtg_version": qtg.__version__,
        "tick": int(sim.tick),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "config": config_dict(cfg),
        "run_dir": None if run_dir is None else str(Path(run_dir).resolve()),
        "world": {"static": fields, "fingerprint": _fingerprint(fields), **names, "keys": keys},
        "engine": _encode(sim.engine.state_dict(), "engine", arrays),
        "hooks": _encode(hook_states(hooks), "hooks", arrays),
    }
    _write(path, header, arrays)
    return path


def _write(path: Path, header: dict, arrays: dict[str, np.ndarray]) -> None:
    manifest, offset = {}, 0
    for name, a in arrays.items():
        manifest[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset, "nbytes": int(a.nbytes)}
        offset = _aligned(offset + a.nbytes)
    header = {**header, "arrays": manifest}
    text = json.dumps(header, separators=(",", ":")).encode()
    data_start = _aligned(_DATA + len(text))
    total = data_start + offset
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with atomic_open(path, "wb") as f:

        def put(b) -> None:
            f.write(b)
            digest.update(b)

        prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, 0, total, bytes(32))
        f.write(prefix)
        digest.update(prefix[8:24])
        put(_HLEN.pack(len(text)))
        put(text)
        put(bytes(data_start - _DATA - len(text)))
        for a in arrays.values():
            b = a.tobytes()  # C order
            put(b)
            put(bytes(_aligned(len(b)) - len(b)))
        assert f.tell() == total
        f.seek(24)
        f.write(digest.digest())


# ---------------------------------------------------------------------- reading
def read_snapshot(path) -> "Snapshot":
    """Read and check a snapshot file. Raises :class:`SnapshotError` (one line) for a
    missing, truncated, corrupted or foreign file, another format version or another qtg
    version. The world layout is checked by :meth:`Snapshot.restore`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SnapshotError(f"no snapshot file at '{path}'") from None
    except OSError as e:
        raise SnapshotError(f"cannot read snapshot '{path}': {e.strerror or e}") from None
    n = len(raw)
    if raw[:8] != MAGIC[:n]:
        raise SnapshotError(f"'{path}' is not a qtg snapshot (wrong magic bytes); pass a {SUFFIX} file written by qtg")
    if n < _DATA:
        raise SnapshotError(f"snapshot '{path}' is truncated ({n} bytes, shorter than its fixed prefix); "
                            "it was not written completely: resume from an earlier snapshot")
    _, version, _, total, digest = _PREFIX.unpack_from(raw)
    if n < total:
        raise SnapshotError(f"snapshot '{path}' is truncated ({n:,} of {total:,} bytes); it was not written "
                            "completely or was cut short in a copy: resume from an earlier snapshot")
    if n > total:
        raise SnapshotError(f"snapshot '{path}' is corrupted ({n - total:,} bytes after its end); "
                            "resume from another snapshot")
    check = hashlib.sha256(raw[8:24])
    check.update(memoryview(raw)[_PREFIX.size :])
    if check.digest() != digest:
        raise SnapshotError(f"snapshot '{path}' is corrupted (SHA-256 checksum mismatch): "
                            "resume from another snapshot")
    if version != FORMAT_VERSION:
        raise SnapshotError(f"snapshot '{path}' has format version {version}; this qtg ({qtg.__version__}) "
                            f"reads format version {FORMAT_VERSION}: resume it with the qtg that wrote it")
    (hlen,) = _HLEN.unpack_from(raw, _PREFIX.size)
    try:
        header = json.loads(raw[_DATA : _DATA + hlen])
    except ValueError:
        raise SnapshotError(f"snapshot '{path}' is corrupted (unreadable header): "
                            "resume from another snapshot") from None
    written_by = header.get("qtg_version")
    if written_by != qtg.__version__:
        raise SnapshotError(f"snapshot '{path}' was written by qtg {written_by}, this is qtg {qtg.__version__}: "
                            f"resume it with qtg {written_by}")
    data_start = _aligned(_DATA + hlen)
    arrays = {}
    for name, m in header["arrays"].items():
        dtype, shape = np.dtype(m["dtype"]), tuple(m["shape"])
        start = data_start + m["offset"]
        if start + m["nbytes"] > n or m["nbytes"] != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise SnapshotError(f"snapshot '{path}' is corrupted (array {name} out of bounds): "
                                "resume from another snapshot")
        arrays[name] = np.frombuffer(raw, dtype, int(np.prod(shape, dtype=np.int64)), start).reshape(shape).copy()
    return Snapshot(path, header, arrays)


@dataclasses.dataclass
class Snapshot:
    """A checked snapshot file: its header and arrays. Resume with :meth:`merged_config`,
    :meth:`restore` and :meth:`load_hooks`."""

    path: Path
    header: dict
    arrays: dict[str, np.ndarray]

    @property
    def tick(self) -> int:
        """Ticks the world had run when it was saved (the next tick's number)."""
        return int(self.header["tick"])

    @property
    def config(self) -> dict:
        """The config of the run that wrote it, as plain data."""
        return self.header["config"]

    @property
    def run_dir(self) -> Path | None:
        """The run directory the snapshot was written for (None if it had none)."""
        d = self.header.get("run_dir")
        return None if d is None else Path(d)

    @property
    def created(self) -> str:
        return self.header["created"]

    @property
    def qtg_version(self) -> str:
        return self.header["qtg_version"]

    @property
    def hooks(self) -> list[str]:
        """Names of the hooks whose cursors it carries."""
        return list(self.header["hooks"])

    def hook_state(self, name: str) -> dict | None:
        """The saved ``state_dict`` of hook ``name`` (None if it has none)."""
        saved = self.header["hooks"].get(name)
        return None if saved is None else _decode(saved, self.arrays)

    def engine_state(self) -> dict:
        """The engine's saved ``state_dict``."""
        return _decode(self.header["engine"], self.arrays)

    def merged_config(self, cfg: Config) -> Config:
        """``cfg`` with the world sections (:data:`WORLD_SECTIONS`) replaced by the
        snapshot's; run, hooks, storage, snapshot, metrics, ui and resume stay ``cfg``'s."""
        from qtg.core.config import config_dict, to_config

        merged = config_dict(cfg)
        merged.update({k: self.config[k] for k in WORLD_SECTIONS if k in self.config})
        try:
            return to_config(merged)
        except ConfigError as e:
            raise SnapshotError(f"snapshot '{self.path}': its config does not validate ({e})") from None

    def location_run_dir(self) -> Path | None:
        """The run directory the snapshot lies in: ``<run dir>/<snapshot.dir>/tick_N.qtgsnap``
        (``snapshot.dir`` as its run had it), judged from the path it was read from, so
        a copied run directory resumes into the copy. None when the file lies elsewhere
        (not inside its run's snapshot folder). :attr:`run_dir` (recorded when it was
        written) is where it lay then."""
        sub = Path(str(self.config.get("snapshot", {}).get("dir", "snapshots")))
        folder = self.path.absolute().parent
        if sub.is_absolute() or not sub.parts or ".." in sub.parts:
            return None
        n = len(sub.parts)
        if len(folder.parts) <= n or folder.parts[-n:] != sub.parts:
            return None
        return Path(*folder.parts[:-n])

    def world_changes(self, cfg: Config, keys: Iterable[str] | None = None) -> list[tuple[str, Any, Any]]:
        """Where ``cfg``'s world (:data:`WORLD_SECTIONS`) differs from the snapshot's:
        ``(dotted key, snapshot value, cfg value)``, leaves in config order. ``keys``
        (dotted keys or sections, such as the command line's overrides) limits the
        comparison to those keys and what lies under them; None compares every world key."""
        from qtg.core.config import config_dict

        given = config_dict(cfg)
        prefixes = None if keys is None else [k for k in keys if k]

        def wanted(key: str) -> bool:
            return prefixes is None or any(key == k or key.startswith((k + ".", k + "[")) for k in prefixes)

        out: list[tuple[str, Any, Any]] = []
        for section in WORLD_SECTIONS:
            for key, a, b in _differences(self.config.get(section), given.get(section), section):
                if wanted(key):
                    out.append((key, a, b))
        return out

    def restore(self, world, engine):
        """A :class:`~qtg.core.sim.Simulation` at the snapshot's tick: ``world`` (built from
        :meth:`merged_config`, e.g. by ``qtg.core.world.build_world``) with every params and
        state leaf replaced by the saved one, and ``engine`` (fresh, same kind) loaded
        with the saved books. Raises :class:`SnapshotError` when the world's layout
        (static fields, leaf names, shapes, dtypes) or the engine differs."""
        from qtg.core.sim import make_simulation

        saved = self.header["world"]
        here = _static_fields(world.static)
        if _fingerprint(here) != saved["fingerprint"]:
            keys = [*here, *(k for k in saved["static"] if k not in here)]  # field order: counts first
            diff = [k for k in keys if here.get(k) != saved["static"].get(k)]
            what = "; ".join(f"{k}: snapshot {_short(saved['static'].get(k))}, this world {_short(here.get(k))}"
                             for k in diff[:3])
            raise SnapshotError(f"snapshot '{self.path}' holds a world of another layout ({what}); resume it "
                                "with its own world config (qtg.run takes it from the snapshot)")
        params = self._tree(world.params, "params", saved)
        state = self._tree(world.state, "state", saved)
        try:
            engine.load_state_dict(self.engine_state())
        except (ValueError, KeyError) as e:
            raise SnapshotError(f"snapshot '{self.path}': its engine state does not fit this engine ({e}); "
                                "resume with the snapshot's engine config") from None
        sim = make_simulation(world.static, params, state, engine)
        if sim.tick != self.tick:
            raise SnapshotError(f"snapshot '{self.path}' is inconsistent (state tick {sim.tick}, header "
                                f"tick {self.tick}): resume from another snapshot")
        return sim

    def _tree(self, tree, part: str, saved: dict):
        leaves = _leaves(tree, part)
        names = [name for name, _ in leaves]
        if names != saved[part]:
            missing = sorted(set(names) - set(saved[part]))
            extra = sorted(set(saved[part]) - set(names))
            what = (f"this world has {missing[0]}, the snapshot does not" if missing else
                    f"the snapshot has {extra[0]}, this world does not" if extra else "leaves in another order")
            raise SnapshotError(f"snapshot '{self.path}' holds a world of another layout ({what}); "
                                "resume it with its own world config")
        out = []
        for name, leaf in leaves:
            a = self.arrays[name]
            if is_key(leaf):
                impl = str(jax.random.key_impl(leaf))
                want = jax.random.key_data(leaf)
                if self.header["world"]["keys"].get(name) != impl or a.shape != want.shape or a.dtype != want.dtype:
                    raise SnapshotError(f"snapshot '{self.path}': PRNG key {name} is "
                                        f"{self.header['world']['keys'].get(name)} {a.dtype}{list(a.shape)}, "
                                        f"this world's is {impl} {want.dtype}{list(want.shape)}")
                data = jax.device_put(a, getattr(want, "sharding", None))
                out.append(jax.random.wrap_key_data(data, impl=jax.random.key_impl(leaf)))
                continue
            dtype, shape = np.dtype(leaf.dtype), tuple(np.shape(leaf))
            if a.dtype != dtype or a.shape != shape:
                raise SnapshotError(f"snapshot '{self.path}' holds a world of another layout ({name}: snapshot "
                                    f"{a.dtype}{list(a.shape)}, this world {dtype}{list(shape)}); "
                                    "resume it with its own world config")
            out.append(jax.device_put(a, getattr(leaf, "sharding", None)))
        return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(tree), out)

    def load_hooks(self, hooks: Iterable[Any]) -> list[str]:
        """``load_state_dict(saved)`` on every hook whose name has a saved cursor (call
        before the run starts). Returns the names loaded. A hook without a saved cursor
        starts afresh; a saved cursor without its hook is ignored."""
        loaded = []
        for h in hooks:
            name = getattr(h, "name", None)
            if name is None or name not in self.header["hooks"] or not callable(getattr(h, "load_state_dict", None)):
                continue
            try:
                h.load_state_dict(self.hook_state(name))
            except (ValueError, KeyError, TypeError) as e:
                raise SnapshotError(f"snapshot '{self.path}': hook {name!r} cannot continue from it ({e})") from None
            loaded.append(name)
        return loaded


_MISSING = "<absent>"


def _differences(a: Any, b: Any, key: str) -> Iterable[tuple[str, Any, Any]]:
    """``(dotted key, a value, b value)`` of every leaf where two plain-data configs
    differ (lists are compared whole; a key one side lacks shows as ``<absent>``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in [*a, *(k for k in b if k not in a)]:
            yield from _differences(a.get(k, _MISSING), b.get(k, _MISSING), f"{key}.{k}")
    elif a != b:
        yield key, a, b


def _short(text: str | None, n: int = 60) -> str:
    if text is None:
        return "none"
    return text if len(text) <= n else text[: n - 3] + "..."


# ---------------------------------------------------------------------- the hook
class Snapshotter:
    """A hook writing snapshots into ``directory`` as ``tick_{tick:07d}.qtgsnap``.

    * every ``every`` ticks, at the boundary after the tick (``every=0``: never);
    * at the next tick boundary after :meth:`request` (thread-safe and signal-safe: the
      terminal UI's key, and ``python -m qtg.run``'s handlers of SIGUSR1, SIGINT and
      SIGTERM; the hook installs no handler itself);
    * when the run stops, with ``at_end`` (or with a request still pending), provided the
      world is at a boundary every hook has seen (not after an error inside a tick).

    It should be the last hook, so the cursors of the other ``hooks`` (the list is read
    at each write, so hooks appended later count) include the tick just run. ``keep > 0``
    keeps only the newest ``keep`` periodic snapshots (the list carries across resumes).
    ``written`` lists the snapshots this run wrote and has not pruned. A write that fails
    with an OS error (disk full) is logged and the run goes on.
    """

    name = "snapshot"

    def __init__(self, directory, cfg: Config, hooks: Sequence[Any] = (), *, every: int = 0,
                 at_end: bool = False, keep: int = 0, run_dir=None) -> None:
        if every < 0 or keep < 0:
            raise ValueError(f"every and keep must be >= 0, got {every} and {keep}")
        self.dir = Path(directory)
        self.cfg, self.hooks = cfg, hooks
        self.every, self.at_end, self.keep, self.run_dir = int(every), bool(at_end), int(keep), run_dir
        self.written: list[Path] = []
        self.failed: list[str] = []  # one line per failed write
        self._periodic: list[str] = []  # file names of periodic snapshots, oldest first
        self._requested = threading.Event()
        self._boundary: int | None = None  # the last tick boundary every hook has seen
        self._last_written: int | None = None

    def request(self) -> None:
        """Write a snapshot at the next tick boundary (thread-safe; signal-safe)."""
        self._requested.set()

    # ------------------------------------------------------------------ hook
    def on_start(self, sim) -> None:
        self._boundary = sim.tick

    def on_tick(self, sim, result) -> None:
        self._boundary = sim.tick
        periodic = self.every > 0 and sim.tick % self.every == 0
        if periodic or self._requested.is_set():
            self._requested.clear()
            self._write(sim, periodic)

    def on_end(self, sim) -> None:
        wanted = self.at_end or self._requested.is_set()
        if wanted and self._last_written != sim.tick:
            if sim.tick == self._boundary:
                self._requested.clear()
                self._write(sim, periodic=False)
            else:  # the run failed or was interrupted at once: its error says so
                log.info("no snapshot at the end: the run stopped inside tick %d", sim.tick)

    # ------------------------------------------------------------------ cursor
    def state_dict(self) -> dict:
        return {"periodic": list(self._periodic)}

    def load_state_dict(self, d: dict) -> None:
        self._periodic = [str(n) for n in d["periodic"]]

    # ------------------------------------------------------------------ writing
    def path_for(self, tick: int) -> Path:
        """The file of a snapshot at ``tick``."""
        return self.dir / f"tick_{tick:07d}{SUFFIX}"

    def _write(self, sim, periodic: bool) -> Path | None:
        path = self.path_for(sim.tick)
        before = list(self._periodic)
        if periodic:  # this snapshot counts itself, so a run resumed from it prunes alike
            self._periodic = [n for n in self._periodic if n != path.name] + [path.name]
        try:
            save_snapshot(path, sim, self.cfg, [h for h in self.hooks if h is not self] + [self],
                          run_dir=self.run_dir)
        except OSError as e:
            self._periodic = before
            self.failed.append(f"tick {sim.tick}: {e}")
            log.error("snapshot at tick %d not written: %s", sim.tick, e)
            return None
        self._last_written = sim.tick
        if path not in self.written:
            self.written.append(path)
        log.info("snapshot written: %s", path)
        while self.keep and len(self._periodic) > self.keep:
            old = self.dir / self._periodic.pop(0)
            old.unlink(missing_ok=True)
            if old in self.written:
                self.written.remove(old)
        return path


__all__ = ["FORMAT_VERSION", "MAGIC", "SUFFIX", "Snapshot", "SnapshotError", "Snapshotter", "read_snapshot",
           "save_snapshot"]
