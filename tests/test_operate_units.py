"""Unit economics: hand-checked cost per unit and trend, project scoping, and bad units files."""

from __future__ import annotations

import pandas as pd
import pytest

from forecasting.samples import load_sample
from operate.costing import Rates, on_demand_rates, priced
from operate.units import load_units, trends, unit_costs
from optimizer.catalog import load_catalog
from usage import schema as S
from usage.schema import UsageError

A100 = "NVIDIA A100"


def usage() -> pd.DataFrame:
    """November: team a 10 GPUs (project x), December: 20 GPUs, half of the hours on project y."""
    nov = pd.date_range("2025-11-01", "2025-12-01", freq="h", inclusive="left")
    dec = pd.date_range("2025-12-01", "2026-01-01", freq="h", inclusive="left")
    return pd.concat([
        pd.DataFrame({S.TIMESTAMP: nov, S.TEAM: "a", S.GPU_TYPE: A100, S.GPUS: 10.0, S.PROJECT: "x"}),
        pd.DataFrame({S.TIMESTAMP: dec, S.TEAM: "a", S.GPU_TYPE: A100, S.GPUS: 20.0,
                      S.PROJECT: ["x", "y"] * (len(dec) // 2)})], ignore_index=True)


def test_cost_per_unit_and_trend(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("team,project,period,unit,count\na,,2025-11,training run,4\na,,2025-12,training run,10\n"
                    "a,y,2025-12,1k inferences,372\n")
    rows = load_units(path, {"a"})
    costs = unit_costs(priced(usage(), Rates({A100: 2.0}, "test")), rows)
    nov, dec = costs[costs["unit"] == "training run"].to_dict("records")
    # November: 720 h x 10 GPUs x 2 USD = 14,400 USD / 4 runs; December: 744 x 20 x 2 = 29,760 USD / 10 runs
    assert nov["cost_usd"] == 14_400.0 and nov["usd_per_unit"] == 3600.0 and nov["gpu_hours_per_unit"] == 1800.0
    assert dec["cost_usd"] == 29_760.0 and dec["usd_per_unit"] == 2976.0
    assert dec["usd_per_unit_change_pct"] == pytest.approx(100 * (2976 / 3600 - 1))
    assert pd.isna(nov["usd_per_unit_change_pct"])
    (inf,) = costs[costs["unit"] == "1k inferences"].to_dict("records")
    assert inf["cost_usd"] == 14_880.0 and inf["usd_per_unit"] == pytest.approx(40.0)  # project y: half of December
    t = trends(costs).set_index("unit")
    assert t.loc["training run", "periods"] == 2 and t.loc["training run", "change_pct"] == pytest.approx(-17.333, 1e-3)


@pytest.mark.parametrize(("text", "match"), [
    ("team,period,unit,count\nb,2025-11,run,1\n", r"row 2, column 'team': unknown team 'b'"),
    ("team,period,unit,count\na,2025-11,run,0\n", r"row 2, column 'count': count 0 is not positive"),
    ("team,period,unit,count\na,2025-11,run,-3\n", r"count -3 is not positive"),
    ("team,period,unit,count\na,2025-11,,3\n", r"row 2, column 'unit': empty unit"),
    ("team,period,unit,count\na,2025-Q4,run,3\na,2025-11,run,1\n",
     r"row 3, column 'period': period 2025-11-01..2025-12-01 overlaps row 2"),
    ("team,period,unit\na,2025-11,run\n", r"column 'count': missing column 'count'"),
])
def test_bad_units_files(tmp_path, text, match):
    path = tmp_path / "u.csv"
    path.write_text(text)
    with pytest.raises(UsageError, match=match):
        load_units(path, {"a"})


def test_shipped_units_file_on_the_sample():
    use = load_sample("synthetic")
    rows = load_units("data_samples/operate/units.csv", set(use[S.TEAM]))
    costs = unit_costs(priced(use, on_demand_rates(load_catalog(), set(use[S.GPU_TYPE]))), rows)
    assert len(costs) == 30 and (costs["cost_usd"] > 0).all()
    t = trends(costs).set_index("team")
    assert t.loc["llm-inference", "change_pct"] < -10  # serving gets cheaper per request as it scales
