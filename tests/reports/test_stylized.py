"""``python -m qtg.validate RUN_DIR``: the table, the JSON and the chart on a synthetic run
directory, and exit code 2 with one line for a missing or malformed input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from qtg import validate
from qtg.reports import analysis
from tests.reports.test_analysis import ar1, garch, write_run

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "JAX_PLATFORMS": "cpu"}


def market_run(tmp_path: Path) -> Path:
    """Three symbols whose mid follows the previous tick's fair value times exp(x) (prices
    meet a tick's fair value a tick later): x an AR(1) toward 0 (b = 0.9), fair a random walk
    with GARCH(1,1) shocks: volatility clusters, returns are uncorrelated, and log(price /
    fair seen) reverts with a half-life of 6.6 ticks."""
    rng = np.random.default_rng(11)
    n = 3000
    shocks = np.stack([garch(rng, n) for _ in range(3)], axis=1) * 0.002
    fair = 100 * np.exp(np.cumsum(shocks, axis=0))
    x = np.stack([ar1(rng, n, 0.9, sigma=0.0005) for _ in range(3)], axis=1)
    seen = np.vstack([fair[:1], fair[:-1]])
    return write_run(tmp_path / "run", seen * np.exp(x), symbols=["ACME", "BOLT", "CRUX"],
                     sectors=["tech", "tech", "energy"], fair=fair)


def test_cli_writes_json_and_png_and_exits_0(tmp_path, capsys):
    run = market_run(tmp_path)
    assert validate.main([str(run)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[1].split()[:2] == ["fact", "statistic"]
    for name in ("heavy tails", "volatility clustering", "no autocorrelation", "mean reversion"):
        assert any(line.startswith(name) for line in lines), name
    data = json.loads((run / "stylized_facts.json").read_text())
    assert data["symbols"] == ["ACME", "BOLT", "CRUX"] and data["ticks"] == 3000
    facts = {f["name"]: f for f in data["facts"]}
    assert facts["volatility clustering"]["passed"] is True
    assert facts["mean reversion"]["passed"] is True
    hl = facts["mean reversion"]["statistics"]["half_life"]
    assert 4.5 < hl < 8.5  # -ln2 / ln 0.9 = 6.58
    assert set(facts["heavy tails"]["per_symbol"]) == {"ACME", "BOLT", "CRUX"}
    assert data["passed"] + data["failed"] + data["not_applicable"] == 4
    assert (run / "stylized_facts.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_failing_facts_still_exit_0(tmp_path, capsys):
    rng = np.random.default_rng(12)
    price = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal((1000, 2)), axis=0))
    run = write_run(tmp_path / "run", price)  # i.i.d. normal, no fair value
    assert validate.main([str(run), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    result = {f["name"]: f["passed"] for f in data["facts"]}
    assert result == {"heavy tails": False, "volatility clustering": False, "no autocorrelation": True,
                      "mean reversion": None}
    assert (run / "stylized_facts.json").exists()


def test_a_failing_verdict_lists_the_failed_facts_and_their_values(tmp_path, capsys):
    rng = np.random.default_rng(12)
    price = 100 * np.exp(np.cumsum(0.001 * rng.standard_normal((1000, 2)), axis=0))
    run = write_run(tmp_path / "run", price)  # i.i.d. normal: no heavy tails, no clustering
    assert validate.main([str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    facts = {f["name"]: f for f in json.loads((run / "stylized_facts.json").read_text())["facts"]}
    k = facts["heavy tails"]["statistics"]
    v = facts["volatility clustering"]
    kurtosis = " / ".join(f"{k[f'kurtosis_h{h}']:.2f}" for h in (1, 5, 20))
    assert [line for line in lines if line.startswith("FAILED")] == [
        f"FAILED heavy tails: excess kurtosis h=1/5/20 = {kurtosis} (needs > 1 at h=1)",
        f"FAILED volatility clustering: mean ACF of |r|, lags 1-10 = {v['value']:.4f} "
        f"(needs {v['threshold']})",
    ]
    assert any(line.startswith("1 passed, 2 failed, 1 n/a") for line in lines)  # the passing fact is not listed
    assert analysis.failed_facts([{**facts["heavy tails"], "passed": True}]) == []


def test_cli_missing_or_malformed_input_exits_2_with_one_line(tmp_path, capsys):
    assert validate.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qtg: ") and err.count("\n") == 1 and "nowhere" in err
    assert validate.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qtg: ") and "prices.csv" in err and err.count("\n") == 1
    (tmp_path / "prices.csv").write_text("tick,symbol,sector,last\n0,ACME,tech,100\n1,ACME,tech,oops\n")
    assert validate.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qtg: malformed") and "line 3" in err and err.count("\n") == 1
    (tmp_path / "prices.csv").write_text("tick,symbol,sector,last\n")
    assert validate.main([str(tmp_path)]) == 2
    assert "no data rows" in capsys.readouterr().err
    assert not (tmp_path / "stylized_facts.json").exists()


def test_module_entry_point(tmp_path):
    rng = np.random.default_rng(13)
    run = write_run(tmp_path / "run", 100 * np.exp(np.cumsum(0.001 * rng.standard_normal(200))))
    ok = subprocess.run([sys.executable, "-m", "qtg.validate", str(run)], cwd=ROOT, capture_output=True,
                        text=True, env=ENV, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "PASS" in ok.stdout or "FAIL" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "qtg.validate", str(tmp_path / "missing")], cwd=ROOT,
                         capture_output=True, text=True, env=ENV,
                         timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("qtg: ") and bad.stderr.count("\n") == 1
