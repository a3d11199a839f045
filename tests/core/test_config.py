"""Config validation and the command line: bad input stops at start with one clear line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qtg.core.compose import load_config
from qtg.core.config import Config, ConfigError, to_config
from systems.strategies import registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "override, message",
    [
        ("population.noise.count=-5", "population.noise.count: must be >= 0, got -5"),
        ("market.tick_size=0", "market.tick_size: must be a positive multiple of 0.0001, got 0.0"),
        ("market.initial_price=100.005", "market.initial_price: must be a positive multiple of the tick size 0.01, got 100.005"),
        ("engine.name=turbo", "engine.name: unknown engine 'turbo'; allowed: exact, fast"),
        ("engine=turbo", "engine=turbo: no such option; allowed: exact, fast"),
        ("engine.stp=maybe", "engine.stp: unknown mode 'maybe'; allowed: none, cancel_taker, cancel_maker"),
        ("run.ticks=0", "run.ticks: must be >= 1, got 0"),
        ("run.tickz=5", "run.tickz: unknown key; allowed: ticks, chart, table, agents_table"),
        ("population.noise.foo=1", "population.noise.foo: unknown key; allowed: count, activity, size, aggressive, price_sigma, collar, cash, shares, max_short, anchor, vol_feedback, vol_periods"),
        ("+population.noise.foo=1", "population.noise.foo: unknown key; allowed: count, activity, size, aggressive, price_sigma, collar, cash, shares, max_short, anchor, vol_feedback, vol_periods"),
        ("population.noise.count=abc", "population.noise.count: Value 'abc' of type 'str' could not be converted to Integer"),
        ("+population.foo.count=1", "population.foo: unknown strategy kind; allowed: " + ", ".join(sorted(registry()))),
        ("population.noise.activity=[0.5,0.1]", "population.noise.activity: range [lo, hi] needs lo <= hi, got [0.5, 0.1]"),
        ("population.noise.activity=[0.5,1.5]", "population.noise.activity: must be in [0.0, 1.0], got [0.5, 1.5]"),
        ("population.noise.size=[1,2,3]", "population.noise.size: must be a range [lo, hi], got [1, 2, 3]"),
        ("seed=-1", "seed: must be >= 0, got -1"),
        ("risk.var_window=1", "risk.var_window: must be an integer >= 2, got 1"),
        ("risk.var_confidence=1.5", "risk.var_confidence: must be a number in (0, 1), got 1.5"),
        ("market.symbols=[]", "market.symbols: at least one symbol is needed"),
        ("market.tick_sizes=[0.01,0.05]", "market.tick_sizes: needs one value per symbol (10), got 2"),
            ("market.sectors=[tech]", "market.sectors: needs one value per symbol (10), got 1; set it too when changing market.symbols ([] = one sector)"),
            ("market.borrow_fraction=1.5", "market.borrow_fraction: must be in [0, 1], got 1.5"),
            ("market.borrow_rate=0.01", "market.borrow_rate: must be in [0, 0.004] per tick, got 0.01"),
            ("market.shares_outstanding=0", "market.shares_outstanding: must be >= 1, got 0"),
        ("market.tick_size=-0.05", "market.tick_size: must be a positive multiple of 0.0001, got -0.05"),
        ("market.initial_price=0", "market.initial_price: must be a positive multiple of the tick size 0.01, got 0.0"),
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


def test_yaml_defaults_equal_embedded_defaults():
    """conf/ mirrors the dataclass defaults: composing with no overrides changes nothing."""
    assert load_config([]) == to_config(Config())


def test_overrides_reach_the_typed_config():
    cfg = load_config(["population.noise.count=500", "run.ticks=2000", "seed=7", "engine=exact"])
    assert (cfg.population["noise"].count, cfg.run.ticks, cfg.seed, cfg.engine.name) == (500, 2000, 7, "exact")


def test_experiment_configs_compose():
    for path in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        load_config([f"+experiment={path.stem}"])


def _cli(*args, cwd, **kw):
    # PYTHONPATH: run this checkout's qtg, not the installed one, from any directory.
    env = os.environ | {"JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "qtg.run", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=kw.pop("timeout", 300), **kw)


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_cli_help_prints_qtg_usage_then_hydras(flag, tmp_path):
    out = _cli(flag, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith("usage: python -m qtg.run ")
    sections = ["summary.json", "config groups", "most used keys", "experiments (+experiment=NAME):",
                "population presets (population=NAME):", "examples:", "run is powered by Hydra."]
    at = [text.index(s) for s in sections]
    assert at == sorted(at), "the sections, in order, qtg's before Hydra's"
    groups = text[at[1]:at[2]].splitlines()
    for group in ("market", "fundamentals", "news", "population", "engine", "risk", "run", "storage", "ui"):
        options = ", ".join(sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml")))
        assert f"  {group:<14}{options}" in groups
    experiments = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))
    assert len(experiments) >= 5 and f"  {'+experiment':<14}{', '.join(experiments)}" in groups
    listed = text[at[3]:at[4]]
    for name in experiments:
        first = next(line for line in (ROOT / "conf" / "experiment" / f"{name}.yaml").read_text().splitlines()
                     if line.startswith("#") and "@package" not in line)
        assert f"  {name:<22}{first.lstrip('# ')}\n" in listed
    presets = text[at[4]:at[5]]
    assert all(f"  {p.stem} " in presets for p in (ROOT / "conf" / "population").glob("*.yaml"))
    defaults = Config()
    keys = text[at[2]:at[3]]
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
    assert lines[0].endswith(f"run in {run}: 40 agents with rows, 10 symbols, 20 ticks, engine=fast, seed=0")
    assert "[WARNING]" in lines[1] and "ui=tui needs a terminal" in lines[1]
    assert "ran 20 ticks in " in lines[2]
    assert lines[3].endswith(f"wrote impact.csv, prices.csv, events.csv, agents.csv, summary.json, config.json in {run}")


def test_cli_bad_override_exits_2_with_one_line(tmp_path):
    out = _cli("population.noise.count=-5", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "qtg: config error: population.noise.count: must be >= 0, got -5"
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert not (tmp_path / "outputs").exists(), "nothing is written for a bad config"


def test_cli_run_writes_summary_and_chart(tmp_path):
    out = _cli("run.ticks=120", "population.noise.count=20", "seed=3", f"hydra.run.dir={tmp_path}/run",
               "hooks=[metrics,storage]", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    from qtg.hooks.storage import RunDB

    with RunDB(tmp_path / "run") as db:  # the storage hook's database holds the same run
        assert db.last_tick() == 119 and len(db.trades()["price"]) == summary["fills"]
    assert summary["storage"]["rows"] > 0 and summary["metrics"]["ticks"] == 120
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["ticks"] == 120
    assert summary["run"]["ticks"] == 120 and summary["run"]["agents"] == 40
    assert summary["fills"] > 0 and summary["volume"] > 0
    assert summary["conservation"] == {"cash": True, "shares": True, "borrow_ledger": True}
    assert set(summary["pnl_by_kind"]) == {"market_maker", "noise"}
    assert summary["engine"]["engine"] == "fast" and summary["engine"]["fills"] == summary["fills"]
    assert summary["risk_by_kind"]["noise"]["sharpe"]["count"] == 20
    assert "Sharpe" in out.stdout and "max DD" in out.stdout
    assert (tmp_path / "run" / "chart.png").stat().st_size > 10_000
    assert (tmp_path / "run" / "correlation.png").stat().st_size > 5_000
    prices = (tmp_path / "run" / "prices.csv").read_text().splitlines()
    assert prices[0] == "tick,symbol,sector,last,bid,ask,mid,fair,volume" and len(prices) == 1 + 120 * 10
    assert (tmp_path / "run" / "events.csv").read_text().startswith("tick,kind,target,size,symbols")
    assert set(summary["portfolio"]) >= {"correlation", "by_kind"} or "correlation" in json.dumps(summary["portfolio"])
    assert "market_maker" in out.stdout and "conservation: cash ok, shares ok, borrow ledger ok" in out.stdout
    assert sum(k["trades"] for k in summary["pnl_by_kind"].values()) == 2 * summary["fills"]
    rows = (tmp_path / "run" / "agents.csv").read_text().splitlines()
    assert len(rows) == 1 + 40 and rows[0].startswith("agent,kind,pnl,equity,cash,trades")
    pnl = sum(float(r.split(",")[2]) for r in rows[1:])
    # kind totals are rounded to cents (<= 0.005 each), rows to 4 decimals
    assert pnl == pytest.approx(sum(k["pnl_total"] for k in summary["pnl_by_kind"].values()), abs=0.02)


def test_cli_run_reports_vwap_execution(tmp_path):
    out = _cli("run.ticks=200", "population.vwap_executor.count=4", "population.vwap_executor.start=[5,10]",
               "population.vwap_executor.horizon=[50,80]", f"hydra.run.dir={tmp_path}/run",
               "hooks=[]", "run.chart=false", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    execution = json.loads((tmp_path / "run" / "summary.json").read_text())["execution"]["vwap_executor"]
    assert execution["all"]["count"] == 4
    assert execution["all"]["completion"] > 0.95


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
