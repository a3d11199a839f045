"""Experiment scripts run end to end on small shapes."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

import facts_reference  # noqa: E402
import seed_sweep  # noqa: E402
import wealth_drift  # noqa: E402


def test_seed_sweep_writes_table_and_figure(tmp_path, capsys):
    assert seed_sweep.main(["--seeds", "2", "--ticks", "40", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "seed_sweep.json").read_text())
    a, b = result["seeds"]
    assert a["fills"] > 0 and b["fills"] > 0
    assert a["fill_hash"] != b["fill_hash"]  # different seeds, different markets
    assert (tmp_path / "seed_sweep.png").stat().st_size > 5_000


def test_wealth_drift_records_each_kind_chunk_by_chunk(capsys):
    assert wealth_drift.main(["--ticks", "60", "--every", "20", "market.symbols=[A,B]", "market.sectors=[]",
                              "population.market_maker.count=2", "population.noise.count=10"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["tick"] for r in result["rows"]] == [20, 40, 60]
    assert sum(r["fills"] for r in result["rows"]) > 0
    for r in result["rows"]:
        noise = r["kinds"]["noise"]
        assert set(r["kinds"]) == {"market_maker", "noise"} and len(r["last"]) == 2
        assert 0 <= noise["below_100"] <= 10 and 0 <= noise["short"] <= 10
        assert noise["min_cash"] <= noise["median_cash"]


def test_wealth_drift_refuses_a_bad_override_in_one_line(capsys):
    assert wealth_drift.main(["--ticks", "10", "population.nois.count=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qtg: config error: population.nois: unknown key; did you mean 'noise'?") and "\n" not in err


def test_facts_reference_applies_the_validate_tests_to_known_series(capsys):
    assert facts_reference.main(["--series", "6", "--ticks", "2000", "--seed", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["series"], result["ticks"]) == (6, 2000) and set(result["models"]) == {"garch", "regimes", "sv", "iid"}
    garch, regimes, sv, iid = (result["models"][m] for m in ("garch", "regimes", "sv", "iid"))
    # 2,000 ticks: 20 blocks of 100, below the 30 a statistic needs
    assert garch["volatility clustering"] == {"1": 1.0, "10": 1.0, "100": None}
    assert regimes["volatility clustering"]["1"] == 1.0 and sv["volatility clustering"]["10"] >= 5 / 6
    assert iid["volatility clustering"]["1"] <= 1 / 6  # the control: independent returns
    assert garch["heavy tails"]["1"] == 1.0 and garch["mean reversion"] == {"1": None}  # no fair value


def test_facts_reference_refuses_too_few_ticks(capsys):
    assert facts_reference.main(["--ticks", "10"]) == 2
    assert capsys.readouterr().err.strip() == "qtg: --series must be >= 1 and --ticks >= 31 (got 100, 10)"
