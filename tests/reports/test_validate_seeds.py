"""``python -m qtg.validate --seeds N``: pass rates over seed x symbol series (exact counts,
n/a left out), the table, one tiny end-to-end run, and exit code 2 with one line for a bad
argument or override."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from qtg import validate
from qtg.reports import analysis, seeds
from tests.reports.test_stylized import market_run

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}
FACTS = [name for name, *_ in analysis.SCALE_FACTS] + [seeds.MEAN_REVERSION]


def verdict(heavy: dict, mr=None) -> dict:
    """One series' verdicts: ``heavy tails`` as given, every other scale fact n/a."""
    v = {name: {"1": None, "10": None, "100": None} for name, *_ in analysis.SCALE_FACTS}
    v["heavy tails"] = heavy
    v[seeds.MEAN_REVERSION] = {"1": mr}
    return v


def test_pass_rates_count_each_verdict_and_leave_na_out():
    vs = [
        verdict({"1": True, "10": True, "100": None}, mr=True),
        verdict({"1": True, "10": False, "100": None}, mr=False),
        verdict({"1": False, "10": False, "100": None}, mr=None),
        verdict({"1": True, "10": None, "100": True}, mr=True),
    ]
    rows = {r["name"]: r for r in seeds.pass_rates(vs)}
    assert list(rows) == FACTS
    h = rows["heavy tails"]["by_scale"]
    assert h["1"] == {"passed": 3, "failed": 1, "not_applicable": 0, "total": 4, "rate": 0.75}
    assert h["10"] == {"passed": 1, "failed": 2, "not_applicable": 1, "total": 3, "rate": 1 / 3}
    assert h["100"] == {"passed": 1, "failed": 0, "not_applicable": 3, "total": 1, "rate": 1.0}
    assert rows["tail index"]["by_scale"]["10"] == {"passed": 0, "failed": 0, "not_applicable": 4,
                                                    "total": 0, "rate": None}
    m = rows[seeds.MEAN_REVERSION]
    assert m["by_scale"] == {"1": {"passed": 2, "failed": 1, "not_applicable": 1, "total": 3, "rate": 2 / 3}}
    assert m["threshold"] == "0 < b < 1, t = (b-1)/se(b) < -2.86"


def test_rates_table_shows_rate_counts_and_na():
    vs = [verdict({"1": True, "10": False, "100": None}, mr=True),
          verdict({"1": True, "10": True, "100": None}, mr=None)]
    lines = seeds.format_rates_table(seeds.pass_rates(vs)).splitlines()
    assert lines[0].split()[:7] == ["fact", "1", "tick", "10", "ticks", "100", "ticks"]
    heavy = next(line for line in lines if line.startswith("heavy tails "))
    assert heavy.split()[2:9] == ["100%", "2/2", "50%", "1/2", "n/a", "0/0", "+2"]
    mr = next(line for line in lines if line.startswith("mean reversion"))
    assert mr.split()[2:7] == ["100%", "1/1", "+1", "n/a", "-"]


def test_series_verdicts_apply_the_scale_thresholds_per_symbol(tmp_path):
    prices = analysis.load_prices(market_run(tmp_path))
    got = seeds.series_verdicts(prices)
    assert list(got) == ["ACME", "BOLT", "CRUX"]
    rv = analysis.returns_and_volume(prices)
    for s, (r, v) in rv.items():
        for name, key, _t, test in analysis.SCALE_FACTS:
            for k in analysis.SCALES:
                st = analysis.scale_statistics(r, v, k)
                want = None if st[key] is None else bool(test(st[key], st))
                assert got[s][name][str(k)] is want, (s, name, k)
        # The synthetic mispricing is an AR(1) with b = 0.9 over 3,000 ticks: it reverts.
        assert got[s][seeds.MEAN_REVERSION] == {"1": True}
    # 3,000 ticks: 29 blocks of 100 ticks, below the 30 needed, so n/a at 100 ticks.
    assert all(got[s]["heavy tails"]["100"] is None for s in got)


def test_seeds_cli_end_to_end(tmp_path):
    out = tmp_path / "v"
    cmd = [sys.executable, "-m", "qtg.validate", "--seeds", "2", "--ticks", "300", "--out", str(out),
           "market.symbols=[A,B]", "population.noise.count=20", "population.market_maker.count=4"]
    done = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "2 seeds, 300 ticks each, 4 seed x symbol series" in lines[0]
    assert lines[1].split()[0] == "fact"
    assert sum(line.startswith(tuple(FACTS)) for line in lines) == len(FACTS)
    res = json.loads((out / "stylized_facts_seeds.json").read_text())
    assert (out / "stylized_facts_seeds.png").stat().st_size > 10_000
    assert (res["seeds"], res["ticks"], res["series"], res["scales"]) == (2, 300, 4, [1, 10, 100])
    assert [(p["seed"], p["symbol"]) for p in res["per_series"]] == [(0, "A"), (0, "B"), (1, "A"), (1, "B")]
    for k in range(2):
        assert (out / f"seed_{k}" / "prices.csv").is_file()
        assert json.loads((out / f"seed_{k}" / "config.json").read_text())["seed"] == k
    assert [f["name"] for f in res["facts"]] == FACTS
    for f in res["facts"]:
        for k, c in f["by_scale"].items():
            got = [p["verdicts"][f["name"]][k] for p in res["per_series"]]
            assert c["passed"] == got.count(True) and c["failed"] == got.count(False)
            assert c["not_applicable"] == got.count(None)
            assert c["passed"] + c["failed"] + c["not_applicable"] == 4
            assert c["total"] == c["passed"] + c["failed"]
            assert c["rate"] == (None if not c["total"] else round(c["passed"] / c["total"], 6))
    # 299 returns: 29 blocks of 10 ticks, below the 30 needed, so every series is n/a there.
    assert all(f["by_scale"]["10"]["not_applicable"] == 4 for f in res["facts"] if "10" in f["by_scale"])
    assert list(res["facts"][-1]["by_scale"]) == ["1"]


def test_parallel_seeds_are_read_in_seed_order_whatever_order_they_finish(tmp_path, monkeypatch):
    """The runs are faked (each seed's directory is copied from a synthetic run whose one
    symbol is named after the seed, and later seeds finish first): the series come back in
    seed order, and one job gives the same JSON as three."""
    import shutil
    import time

    from tests.reports.test_analysis import write_run

    rng = np.random.default_rng(13)
    for k in range(3):
        write_run(tmp_path / f"src{k}", 100 * np.exp(np.cumsum(0.001 * (k + 1) * rng.standard_normal(400))),
                  symbols=[f"K{k}"])

    def fake_run(cmd, **kwargs):
        args = dict(a.split("=", 1) for a in cmd if "=" in a)
        k = int(args["seed"])
        time.sleep(0.1 * (2 - k))
        shutil.copytree(tmp_path / f"src{k}", args["hydra.run.dir"])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(validate.subprocess, "run", fake_run)
    results = {}
    for jobs in (3, 1):
        out = tmp_path / f"jobs{jobs}"
        assert validate.main(["--seeds", "3", "--jobs", str(jobs), "--out", str(out), "--json"]) == 0
        results[jobs] = json.loads((out / "stylized_facts_seeds.json").read_text())
    assert [(p["seed"], p["symbol"]) for p in results[3]["per_series"]] == [(0, "K0"), (1, "K1"), (2, "K2")]
    assert (results[3]["facts"], results[3]["per_series"]) == (results[1]["facts"], results[1]["per_series"])


def test_bad_arguments_and_overrides_exit_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "v"
    cases = [
        (["--seeds", "2", "--out", str(out), "population.nois.count=3"], "population.nois"),
        (["--seeds", "2", "--out", str(out), "population=huge"], "population=huge"),
        (["--seeds", "2", "--out", str(out), "seed=3"], "seed=3"),
        (["--seeds", "0", "--out", str(out)], "--seeds"),
        (["--seeds", "2", "--ticks", "0", "--out", str(out)], "--ticks"),
        (["--seeds", "two"], "--seeds"),
        (["--ticks", "10", str(tmp_path)], "--ticks"),
        (["--seeds", "2", "--jobs", "0", "--out", str(out)], "--jobs"),
        (["--jobs", "2", str(tmp_path)], "--jobs"),
    ]
    for argv, key in cases:
        assert validate.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("qtg: ") and key in err, (argv, err)
        assert not out.exists()


def test_module_entry_point_bad_override(tmp_path):
    done = subprocess.run([sys.executable, "-m", "qtg.validate", "--seeds", "1", "--out", str(tmp_path / "v"),
                           "market.nope=1"], check=False, cwd=ROOT, capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "market.nope" in done.stderr
    assert not (tmp_path / "v").exists()
