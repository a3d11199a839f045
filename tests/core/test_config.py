"""Config validation and the command line: bad input stops at start with one clear line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qtg.core.compose import load_config, run_experiments
from qtg.core.config import Config, ConfigError, config_dict, to_config
from systems.strategies import registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "override, message",
    [
        ("population.noise.count=-5", "population.noise.count: must be in [0, 1000000000000000], got -5"),
        ("market.tick_size=0", "market.tick_size: must be in [0.0001, 10000.0], got 0.0"),
        ("market.initial_price=100.005", "market.initial_price: must be a positive multiple of the tick size 0.01, got 100.005"),
        ("engine.name=turbo", "engine.name: unknown engine 'turbo'; allowed: device, exact, fast"),
        ("engine=turbo", "engine=turbo: no such option; allowed: device, exact, fast"),
        ("engine.capacity=0", "engine.capacity: must be in [1, 1000000], got 0"),
        ("engine.stp=maybe", "engine.stp: unknown mode 'maybe'; allowed: none, cancel_taker, cancel_maker"),
        ("run.ticks=0", "run.ticks: must be in [1, 1000000000], got 0"),
        ("run.tickz=5", "run.tickz: unknown key; did you mean 'ticks'? allowed: ticks, chart, table, agents_table, memory_limit_gb"),
        ("population.noise.foo=1", "population.noise.foo: unknown key; allowed: count, activity, size, size_tail, aggressive, price_sigma, collar, cash, shares, max_short, anchor, vol_feedback, vol_periods, chartists, switching, herding, predisposition, misalignment, value_weight, trend_weight, trend_period, chartist_activity, rebalance, chartist_size, chartist_aggressive"),
        ("+population.noise.foo=1", "population.noise.foo: unknown key; allowed: count, activity, size, size_tail, aggressive, price_sigma, collar, cash, shares, max_short, anchor, vol_feedback, vol_periods, chartists, switching, herding, predisposition, misalignment, value_weight, trend_weight, trend_period, chartist_activity, rebalance, chartist_size, chartist_aggressive"),
        ("population.noise.count=abc", "population.noise.count: Value 'abc' of type 'str' could not be converted to Integer"),
        ("+population.foo.count=1", "population.foo: unknown strategy kind; allowed: " + ", ".join(sorted(registry()))),
        ("population.noise.activity=[0.5,0.1]", "population.noise.activity: range [lo, hi] needs lo <= hi, got [0.5, 0.1]"),
        ("population.noise.activity=[0.5,1.5]", "population.noise.activity: must be in [0.0, 1.0], got [0.5, 1.5]"),
        ("population.noise.size=[1,2,3]", "population.noise.size: must be a range [lo, hi], got [1, 2, 3]"),
        ("seed=-1", "seed: must be in [0, 9223372036854775807], got -1"),
        ("risk.var_window=1", "risk.var_window: must be in [2, 100000], got 1"),
        ("risk.var_confidence=1.5", "risk.var_confidence: must be in [0.0, 1.0], got 1.5"),
        ("market.symbols=[]", "market.symbols: at least one symbol is needed"),
        ("market.tick_sizes=[0.01,0.05]", "market.tick_sizes: needs one value per symbol (10), got 2"),
            ("market.sectors=[tech]", "market.sectors: needs one value per symbol (10), got 1; set it too when changing market.symbols ([] = one sector)"),
            ("market.borrow_fraction=1.5", "market.borrow_fraction: must be in [0.0, 1.0], got 1.5"),
            ("market.borrow_rate=0.01", "market.borrow_rate: must be in [0.0, 0.004], got 0.01"),
            ("market.shares_outstanding=0", "market.shares_outstanding: must be in [1, 1000000000000], got 0"),
        ("market.tick_size=-0.05", "market.tick_size: must be in [0.0001, 10000.0], got -0.05"),
        ("market.initial_price=0", "market.initial_price: must be in [0.0001, 100000.0], got 0.0"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError) as e:
        load_config([override])
    assert str(e.value) == message


def test_every_strategy_module_is_a_kind():
    assert {"market_maker", "noise", "momentum", "trend_follower", "macd_cross",
            "bollinger_reversion", "vwap_executor"} <= set(registry())


def test_type_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^run.ticks: Value 'abc'"):
        load_config(["run.ticks=abc"])


def test_per_symbol_prices_must_sit_on_their_own_tick_grid():
    base = ["market.symbols=[A,B]", "market.tick_sizes=[0.01,0.05]"]
    with pytest.raises(ConfigError) as e:
        load_config([*base, "market.initial_prices=[100.0,20.02]"])
    assert str(e.value) == "market.initial_prices: must be a positive multiple of the tick size 0.05, got 20.02"
    cfg = load_config([*base, "market.initial_prices=[100.0,20.05]"])
    assert cfg.market.ticks().tolist() == [100, 500]
    assert cfg.market.opening_prices().tolist() == [1_000_000, 200_500]


def test_all_counts_zero_is_refused():
    with pytest.raises(ConfigError, match="population: at least one agent"):
        load_config(["population.noise.count=0", "population.market_maker.count=0"])


def _leaves(tree, prefix: str = "") -> dict:
    """Dotted key -> value for every leaf of nested dicts (a list is a leaf)."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}


def _changed(cfg: Config, reference: Config) -> dict:
    """Dotted key -> (value, reference value) wherever two typed configs differ."""
    a, b = _leaves(config_dict(cfg)), _leaves(config_dict(reference))
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


DEFAULTS = to_config(Config())


def test_composed_default_is_the_dataclass_defaults():
    """The defaults live in the dataclasses (the schema); conf/ adds nothing to them."""
    cfg = load_config([])
    assert _changed(cfg, DEFAULTS) == {}
    assert cfg == DEFAULTS
    # ... and the dataclass defaults carry the default population: 20 market makers and
    # 100 noise traders, every other kind present and off.
    counts = {name: k.count for name, k in cfg.population.items()}
    assert counts == {name: {"market_maker": 50, "noise": 100}.get(name, 0) for name in registry()}


CONF = ROOT / "conf"


@pytest.mark.parametrize("file, text, key", [
    ("config.yaml", "market:\n  initial_price: 101.0\n", "market.initial_price"),
    ("population/small.yaml", "noise:\n  cash: 5000.0\n", "population.noise.cash"),
    ("engine/fast.yaml", "stp: none\n", "engine.stp"),
    ("ui/none.yaml", "fps: 5.0\n", "ui.fps"),
])
def test_a_value_readded_to_a_conf_file_is_caught(tmp_path, monkeypatch, file, text, key):
    """The comparison above fails when a YAML file sets a value other than the dataclass's."""
    import shutil

    import qtg.core.compose as compose

    shutil.copytree(CONF, tmp_path / "conf")
    path = tmp_path / "conf" / file
    path.write_text(path.read_text() + text)
    monkeypatch.setattr(compose, "CONF_DIR", tmp_path / "conf")
    changed = _changed(load_config([]), DEFAULTS)
    assert list(changed) == [key]


def _conf_values(path: Path) -> dict:
    """Dotted key -> value set by one file under conf/, at its package's place."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path)) or {}
    data.pop("defaults", None)
    data.pop("hydra", None)
    rel = path.relative_to(CONF)
    glob = rel.parent == Path(".") or path.read_text().startswith("# @package _global_")
    return _leaves(data, "" if glob else f"{rel.parent.as_posix()}.")


@pytest.mark.parametrize("path", sorted(p.relative_to(CONF).as_posix() for p in CONF.rglob("*.yaml")
                                        if p.parent.name != "experiment"))
def test_conf_files_only_override(path):
    """Outside the experiments, a file under conf/ sets only values that differ from the
    dataclass defaults: a copy of a default would be a second source of it."""
    from qtg.rl.config import RLConfig

    training = path == "train.yaml" or path.split("/")[0] in ("env", "reward")  # qtg.train's config
    defaults = _leaves(config_dict(to_config(RLConfig(), RLConfig) if training else DEFAULTS))
    for key, value in _conf_values(CONF / path).items():
        assert key in defaults, f"{path}: {key} is not a config key"
        assert value != defaults[key], f"{path}: {key}: {value!r} repeats the default (see the dataclass)"


def test_overrides_reach_the_typed_config():
    cfg = load_config(["population.noise.count=500", "run.ticks=2000", "seed=7", "engine=exact"])
    assert (cfg.population["noise"].count, cfg.run.ticks, cfg.seed, cfg.engine.name) == (500, 2000, 7, "exact")


def _matches(value, expected) -> bool:
    """A composed value against a YAML one; a list of records (news.scheduled) matches when
    each composed record holds the YAML record's fields (the rest are the defaults)."""
    if isinstance(expected, list) and expected and isinstance(expected[0], dict):
        return len(value) == len(expected) and all(v | e == v for v, e in zip(value, expected))
    return value == expected


OVERRIDE_FILES = [(f"+experiment={p.stem}", f"experiment/{p.name}") for p in run_experiments(CONF)]
OVERRIDE_FILES += [(f"population={p}", f"population/{p}.yaml") for p in ("seed_100k", "million")]


@pytest.mark.parametrize("override, path", OVERRIDE_FILES)
def test_experiments_and_presets_change_only_their_keys(override, path):
    """Each experiment and population preset composes to the dataclass defaults with the
    file's values at the file's keys, and nothing else changed."""
    cfg = load_config([override])
    values = _conf_values(CONF / path)
    assert values, f"{path} sets nothing"
    composed = _leaves(config_dict(cfg))
    for key, value in values.items():
        assert _matches(composed[key], value), f"{key}: composed {composed[key]!r}, {path} says {value!r}"
    expected = {k for k, v in values.items() if not _matches(_leaves(config_dict(DEFAULTS))[k], v)}
    if "market.symbols" in values and "market.sectors" not in values:
        expected.add("market.sectors")  # the default sectors belong to the default symbols
        assert cfg.market.sectors == []
    assert set(_changed(cfg, DEFAULTS)) == expected
    assert expected, f"{override} changes nothing"


def test_experiments_keep_their_meaning():
    """Spot values of each experiment, independent of how the files are written."""
    shock = load_config(["+experiment=sector_shock"]).news
    assert [(e.kind, e.tick, e.target, e.size) for e in shock.scheduled] == [("sector", 300, "tech", -0.2)]
    assert (shock.earnings.rate, shock.sector.rate, shock.sector.duration) == (0.0, 0.0, 200)
    assert shock.earnings.duration == DEFAULTS.news.earnings.duration == 200
    large = load_config(["+experiment=large"])
    assert large.market.symbols == ["ACME", "BOLT"] and large.market.sectors == []
    assert {n: k.count for n, k in large.population.items() if k.count} == {"market_maker": 200, "noise": 99_800}
    assert large.population["noise"].activity == [0.01, 0.05] and large.population["noise"].size == [10, 300]
    tour = load_config(["+experiment=strategy_tournament"])
    assert tour.hooks == ["metrics", "storage"] and (tour.run.chart, tour.run.table) == (False, False)
    assert load_config(["+experiment=earnings_season"]).news.scheduled[-1].target == "JADE"
    seed = load_config(["population=seed_100k"])
    assert sum(k.count for k in seed.population.values()) == 100_000
    assert seed.population["noise"].activity == DEFAULTS.population["noise"].activity


def _cli(*args, cwd, **kw):
    # This checkout's qtg, whichever one the interpreter has installed, from any directory.
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "qtg.run", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=kw.pop("timeout", 300), **kw)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_cli_help_prints_qtg_usage_then_hydras(flag, tmp_path):
    out = _cli(flag, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("usage: python -m qtg.run ")
    sections = ["summary.json", "config groups", "config sections", "most used keys", "experiments (+experiment=NAME):",
                "population presets (population=NAME):", "market presets (market=NAME):", "examples:",
                "run is powered by Hydra."]
    at = [text.index(s) for s in sections]
    assert at == sorted(at), "the sections, in order, qtg's before Hydra's"
    groups = text[at[1]:at[2]].splitlines()
    with_options = sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and any(p.glob("*.yaml")))
    assert with_options == ["engine", "env", "experiment", "market", "population", "reward", "ui"]  # env, reward: qtg.train
    for group in ("population", "market", "engine", "ui"):
        options = ", ".join(sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")))
        assert f"  {group:<14}{options}" in groups
    assert text[at[2]:at[3]].splitlines()[1] == ("  market, fundamentals, news, engine, risk, run, storage, snapshot, "
                                                 "metrics, ui")
    experiments = [p.stem for p in run_experiments(ROOT / "conf")]
    assert "rl_ppo" not in experiments and len(experiments) >= 5 and f"  {'+experiment':<14}{', '.join(experiments)}" in groups
    listed = text[at[4]:at[5]]
    for name in experiments:
        first = next(line for line in (ROOT / "conf" / "experiment" / f"{name}.yaml").read_text().splitlines()
                     if line.startswith("#") and "@package" not in line)
        assert f"  {name:<22}{first.lstrip('# ')}\n" in listed
    presets = text[at[5]:at[6]]
    assert all(f"  {p.stem} " in presets for p in (ROOT / "conf" / "population").glob("*.yaml"))
    defaults = Config()
    keys = text[at[3]:at[4]]
    assert f"default {defaults.run.ticks}\n" in keys.split("run.ticks", 1)[1].split("\n", 1)[0] + "\n"
    assert f"default {defaults.population['noise']['count']}\n" in keys.split("population.noise.count", 1)[1]
    assert len([line for line in keys.splitlines() if "; default " in line]) == 10


@pytest.fixture(scope="module")
def tui_without_terminal(tmp_path_factory):
    """``python -m qtg.run ui=tui`` with stdin from /dev/null and stdout a pipe: the run."""
    tmp = tmp_path_factory.mktemp("tui")
    run = tmp / "run"
    out = _cli("ui=tui", "run.ticks=20", "population.noise.count=20", "run.chart=false", f"hydra.run.dir={run}",
               cwd=tmp, stdin=subprocess.DEVNULL, timeout=240)  # a hang fails here (TimeoutExpired)
    return out, run


def test_cli_ui_tui_without_a_terminal_falls_back_to_the_progress_bar(tui_without_terminal):
    out, run = tui_without_terminal
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and warnings[0].endswith(
        "ui=tui needs a terminal on stdin and stdout; showing the progress bar instead"), out.stderr
    assert "20/20" in out.stderr  # the progress bar ran to the end
    assert json.loads((run / "summary.json").read_text())["run"]["ticks"] == 20
    assert (run / "prices.csv").exists() and (run / "qtg.sqlite").exists()
    assert "run directory:" in out.stdout and "WARNING" not in out.stdout


def test_cli_run_log_holds_the_runs_log_lines(tui_without_terminal):
    out, run = tui_without_terminal
    lines = (run / "run.log").read_text().splitlines()
    assert len(lines) == 4, lines
    assert lines[0].endswith(f"run in {run}: 70 agents with rows, 10 symbols, 20 ticks, engine=fast, seed=0")
    assert "[WARNING]" in lines[1] and "ui=tui needs a terminal" in lines[1]
    assert "ran 20 ticks in " in lines[2]
    assert lines[3].endswith(f"wrote impact.csv, prices.csv, events.csv, agents.csv, summary.json, config.json in {run}")


def test_cli_bad_override_exits_2_with_one_line(tmp_path):
    out = _cli("population.noise.count=-5", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "qtg: config error: population.noise.count: must be in [0, 1000000000000000], got -5"
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "outputs").exists(), "nothing is written for a bad config"


LATE_SHOCK = "news.scheduled=[{kind: sector, tick: 5000, target: tech, size: -0.2}]"


def test_a_scheduled_event_past_the_run_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        load_config([LATE_SHOCK])
    assert str(e.value) == ("news.scheduled[0].tick: 5000 is past run.ticks (1000); the sector event on tech "
                            "would never happen (ticks run 0 to 999): move it or raise run.ticks")
    # The run's ticks are 0 .. run.ticks - 1: an event at run.ticks is past it, the tick before is in.
    rate = "news.scheduled=[{kind: rate, tick: 300, size: 0.01}, {kind: rate, tick: %d, size: 0.01}]"
    with pytest.raises(ConfigError, match=r"^news\.scheduled\[1\]\.tick: 1000 is past run\.ticks \(1000\); the rate event "):
        load_config([rate % 1000])
    assert [ev.tick for ev in load_config([rate % 999]).news.scheduled] == [300, 999]
    assert load_config([LATE_SHOCK, "run.ticks=5001"]).news.scheduled[0].tick == 5000
    # An experiment's events with fewer ticks than the experiment runs: refused the same way.
    with pytest.raises(ConfigError, match=r"^news\.scheduled\[0\]\.tick: 300 is past run\.ticks \(300\)"):
        load_config(["+experiment=sector_shock", "run.ticks=300"])


def test_a_resumed_run_takes_its_events_from_the_snapshot(tmp_path):
    """With resume set, the world (news included) comes from the snapshot and run.ticks may
    end the run early, like a stop: this config's events are not held against it."""
    snap = tmp_path / "tick_0000500.qtgsnap"
    snap.write_bytes(b"")  # validation only checks that the file exists
    cfg = load_config([LATE_SHOCK, f"resume={snap}"])
    assert cfg.resume == str(snap) and cfg.news.scheduled[0].tick == 5000


def test_cli_cfg_job_prints_the_whole_composed_config(tmp_path):
    """--cfg job prints every value, the schema's defaults included, as Hydra composed them."""
    import yaml
    from omegaconf import OmegaConf

    from qtg.core.compose import compose

    out = _cli("--cfg", "job", "population.noise.count=500", "engine=exact", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    printed = yaml.safe_load(out.stdout)
    composed = config_dict(load_config(["population.noise.count=500", "engine=exact"]))
    expected = OmegaConf.to_container(compose(["population.noise.count=500", "engine=exact"]))
    expected.pop("hydra", None)
    assert printed == expected
    assert set(printed) == set(composed)
    for section in ("market", "fundamentals", "news", "engine", "risk", "run", "storage", "snapshot", "metrics", "ui"):
        assert printed[section] == composed[section], section
    assert printed["population"]["noise"] == composed["population"]["noise"]  # every field, not just the count
    assert (printed["population"]["noise"]["count"], printed["engine"]["name"]) == (500, "exact")
    assert not (tmp_path / "outputs").exists()


def test_cli_late_event_exits_2_before_anything_is_written(tmp_path):
    out = _cli(LATE_SHOCK, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == ("qtg: config error: news.scheduled[0].tick: 5000 is past run.ticks (1000); the "
                                  "sector event on tech would never happen (ticks run 0 to 999): move it or raise run.ticks")
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "outputs").exists(), "nothing is written for a bad config"


@pytest.mark.slow
def test_cli_run_writes_summary_and_chart(tmp_path):
    """One CLI run writes every output, and its summary reports the VWAP executors' execution."""
    out = _cli("run.ticks=120", "population.noise.count=20", "seed=3", f"hydra.run.dir={tmp_path}/run",
               "hooks=[metrics,storage]", "population.vwap_executor.count=4", "population.vwap_executor.start=[5,10]",
               "population.vwap_executor.horizon=[50,80]", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    from qtg.hooks.storage import RunDB

    with RunDB(tmp_path / "run") as db:  # the storage hook's database holds the same run
        assert db.last_tick() == 119 and len(db.trades()["price"]) == summary["fills"]
    assert summary["storage"]["rows"] > 0 and summary["metrics"]["ticks"] == 120
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["ticks"] == 120
    assert summary["run"]["ticks"] == 120 and summary["run"]["agents"] == 74
    assert summary["fills"] > 0 and summary["volume"] > 0
    assert summary["conservation"] == {"cash": True, "shares": True, "borrow_ledger": True}
    assert set(summary["pnl_by_kind"]) == {"market_maker", "noise", "vwap_executor"}
    assert summary["engine"]["engine"] == "fast" and summary["engine"]["fills"] == summary["fills"]
    assert summary["risk_by_kind"]["noise"]["sharpe"]["count"] == 20
    assert "Sharpe" in out.stdout and "max DD" in out.stdout
    assert (tmp_path / "run" / "chart.png").stat().st_size > 10_000
    assert (tmp_path / "run" / "correlation.png").stat().st_size > 5_000
    prices = (tmp_path / "run" / "prices.csv").read_text().splitlines()
    assert prices[0] == "tick,symbol,sector,last,bid,ask,mid,fair,volume,tick_size" and len(prices) == 1 + 120 * 10
    assert (tmp_path / "run" / "events.csv").read_text().startswith("tick,kind,target,size,symbols")
    assert set(summary["portfolio"]) >= {"correlation", "by_kind"} or "correlation" in json.dumps(summary["portfolio"])
    assert "market_maker" in out.stdout and "conservation: cash ok, shares ok, borrow ledger ok" in out.stdout
    assert sum(k["trades"] for k in summary["pnl_by_kind"].values()) == 2 * summary["fills"]
    rows = (tmp_path / "run" / "agents.csv").read_text().splitlines()
    assert len(rows) == 1 + 74 and rows[0].startswith("agent,kind,pnl,equity,cash,trades")
    pnl = sum(float(r.split(",")[2]) for r in rows[1:])
    # kind totals are rounded to cents (<= 0.005 each), rows to 4 decimals
    assert pnl == pytest.approx(sum(k["pnl_total"] for k in summary["pnl_by_kind"].values()), abs=0.02)
    execution = summary["execution"]["vwap_executor"]  # every program ends by tick 90 of the 120
    assert execution["all"]["count"] == 4 and execution["all"]["completion"] > 0.95


def test_other_symbols_without_sectors_share_one_sector():
    cfg = load_config(["market.symbols=[A,B,C]"])
    assert cfg.market.sectors == [] and cfg.market.sector_names() == ("market",)
    cfg = load_config(["market.symbols=[A,B]", "market.sectors=[x,y]"])
    assert cfg.market.sector_names() == ("x", "y") and cfg.market.sector_of().tolist() == [0, 1]


@pytest.mark.parametrize(
    "override, message",
    [
        ("population.pairs.leg_b=0", "population.pairs.leg_b: must differ from leg_a (0)"),
        ("population.pairs.leg_a=12", "population.pairs.leg_a: a symbol row in [0, 9], got 12"),
        ("population.pairs.exit=3", "population.pairs.exit: must be below entry (2.0), got 3.0"),
    ],
)
def test_a_kinds_own_check_runs_when_it_has_agents(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(["population.pairs.count=2", override])
    assert str(e.value) == message
    load_config([override])  # a kind that is off is not checked
