"""The SYNTHETIC storage and transfer lines of the synthetic organisation: reproducible from the generator, labelled,
and consistent with the organisation's GPU work (checkpoints grow with training, egress follows serving)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from forecasting import sample_data_costs as sdc
from forecasting.samples import DEFAULT_ORG, load_sample
from operate.data_costs import read_data_usage
from usage.ingest.data_lines import DATA_COLUMNS

DATA = Path(__file__).resolve().parents[1] / "data_samples"


@pytest.fixture(scope="module")
def usage() -> pd.DataFrame:
    return load_sample("synthetic")


@pytest.fixture(scope="module")
def lines(usage: pd.DataFrame) -> pd.DataFrame:
    return sdc.generate_data_lines(usage)


def _gpu_hours(usage: pd.DataFrame, kind: tuple[str, ...]) -> pd.Series:
    kinds = {(s.team, s.gpu_type): s.kind for s in DEFAULT_ORG}
    u = usage.assign(month=usage["timestamp"].dt.strftime("%Y-%m"),
                     kind=[kinds[(t, g)] for t, g in zip(usage["team"], usage["gpu_type"], strict=True)])
    return u[u["kind"].isin(kind)].groupby(["team", "month"])["gpus"].sum()


def test_shipped_file_equals_regeneration_byte_for_byte(lines: pd.DataFrame, tmp_path: Path) -> None:
    again = sdc.write_data_lines(lines, tmp_path / sdc.DATA_COSTS_FILE)
    assert again.read_bytes() == (DATA / sdc.DATA_COSTS_FILE).read_bytes()
    shipped = sdc.load_sample_data_costs()
    assert list(shipped.columns) == list(DATA_COLUMNS) and len(shipped) == len(lines) == 1760
    assert shipped["cost_usd"].sum() == pytest.approx(1_956_012.82, abs=0.005)
    assert "SYNTHETIC" in shipped.attrs["note"]
    readme = (DATA / "README.md").read_text()
    assert sdc.DATA_COSTS_FILE in readme and "SYNTHETIC" in readme


def test_generation_is_seeded(usage: pd.DataFrame, lines: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(sdc.generate_data_lines(usage), lines, check_exact=True)
    other = sdc.generate_data_lines(usage, seed=1)
    assert other.shape == lines.shape and not np.array_equal(other["quantity"], lines["quantity"])


def test_costs_are_quantity_times_the_stated_price(lines: pd.DataFrame) -> None:
    price = lines["class"].map(sdc.PRICES)
    assert price.notna().all()
    assert np.allclose(lines["cost_usd"], lines["quantity"] * price, rtol=0.0, atol=0.0051)  # rounded to the cent
    assert set(lines["class"]) == set(sdc.PRICES)
    assert set(lines["unit"]) == {"GB-month", "GB"}


def test_checkpoints_grow_with_the_teams_training_gpu_hours(usage: pd.DataFrame, lines: pd.DataFrame) -> None:
    train = _gpu_hours(usage, ("training", "eval"))
    ckpt = lines[lines["class"] == "s3-standard"].groupby(["team", "month"])["quantity"].sum()
    # only training work writes checkpoints
    assert set(ckpt.index.get_level_values("team")) == set(train[train > 0].index.get_level_values("team"))
    rises = varied = 0
    for team in sorted(set(ckpt.index.get_level_values("team"))):
        t = train.loc[team]
        c = ckpt.loc[team].reindex(t.index).fillna(0.0)
        up = (t > 1.3 * np.maximum(t.shift(1), t.shift(2))).to_numpy()
        # every month whose training GPU-hours rise 30% above both previous months has more checkpoint GB-months
        # than the last (half of the older checkpoints are deleted every month)
        assert (c.diff().to_numpy()[up] > 0).all(), team
        rises += int(up.sum())
        if t.std() > 0.2 * t.mean() and len(t) > 3:   # teams whose training varies: checkpoints follow it
            assert t.corr(c, method="spearman") > 0.5, team
            varied += 1
    assert rises >= 10 and varied >= 5
    # llm-pretrain's 128-H100 run from 2025-09-06: September's checkpoints are its largest
    lp = ckpt.loc["llm-pretrain"]
    assert lp.idxmax() == "2025-09" and lp["2025-09"] > 1.1 * lp["2025-08"]


def test_egress_follows_serving_and_datasets_never_shrink(usage: pd.DataFrame, lines: pd.DataFrame) -> None:
    serving = _gpu_hours(usage, ("serving",))
    egress = lines[lines["class"] == "internet-egress"].groupby(["team", "month"])["quantity"].sum()
    ratio = egress / serving.reindex(egress.index)
    assert ratio.between(sdc.EGRESS_GB_PER_SERVING_GPU_HOUR * np.exp(-0.25),
                         sdc.EGRESS_GB_PER_SERVING_GPU_HOUR * np.exp(0.25)).all()
    assert set(egress.index.get_level_values("team")) == set(serving[serving > 0].index.get_level_values("team"))
    # inter-region training-data reads only for the teams whose data set is in another region
    assert set(lines.loc[lines["class"] == "inter-region", "team"]) == set(sdc.CROSS_REGION_TEAMS)
    # nlp-legacy stops using GPUs in 2025-09 but keeps paying for its data set
    ds = lines[(lines["class"] == "s3-intelligent-tiering") & (lines["team"] == "nlp-legacy")].set_index("month")
    assert ds.loc["2025-11", "quantity"] > 0.8 * ds["quantity"].max()
    assert not ((lines["team"] == "nlp-legacy") & (lines["class"] == "inter-az") & (lines["month"] == "2025-11")).any()


def test_late_starters_have_no_lines_before_their_first_month(lines: pd.DataFrame) -> None:
    assert lines.loc[lines["team"] == "code-assist", "month"].min() == "2025-06"
    assert lines.loc[lines["team"] == "llm-pretrain", "month"].min() == "2024-06"


def test_canonical_reader_names_the_bad_row_and_column(tmp_path: Path) -> None:
    good = "month,team,project,category,class,quantity,unit,cost_usd\n2025-11,a,p,transfer,inter-az,10,GB,0.10\n"
    (tmp_path / "ok.csv").write_text(good + "2025-11,,,snapshot,ebs-snapshot,,GB-month,1.5\n")
    frame = read_data_usage(tmp_path / "ok.csv")
    assert frame["team"].tolist() == ["a", "unallocated"] and frame["cost_usd"].sum() == pytest.approx(1.6)
    for line, where in (("2025-13,a,p,transfer,inter-az,1,GB,1", "row 2, column 'month'"),
                        ("2025-11,a,p,compute,x,1,GB,1", "row 2, column 'category'"),
                        ("2025-11,a,p,transfer,inter-az,-1,GB,1", "row 2, column 'quantity'"),
                        ("2025-11,a,p,transfer,inter-az,1,GB,", "row 2, column 'cost_usd'")):
        (tmp_path / "bad.csv").write_text(good + line + "\n")
        with pytest.raises(ValueError, match=rf"bad.csv {where}.*fix:"):
            read_data_usage(tmp_path / "bad.csv")
