"""Storage lifecycle savings at the dated us-east-1 S3 price snapshot (operate.data_savings, issue 17 item 3).

Hand-checkable case of the issue: 1 TB (1,024 GB) in S3 Standard, not read for 90 days.
"""

from __future__ import annotations

import pytest

from forecasting.schema import UsageError
from operate.data_savings import lifecycle_options, lifecycle_saving, load_storage_prices


@pytest.fixture(scope="module")
def prices():
    return load_storage_prices()


def test_the_snapshot_holds_the_published_us_east_1_prices(prices):
    assert prices["s3-standard"].storage_usd_per_gb_month == 0.023
    assert prices["s3-standard-ia"].storage_usd_per_gb_month == 0.0125
    assert prices["s3-standard-ia"].retrieval_usd_per_gb == 0.01
    assert prices["s3-glacier-instant-retrieval"].storage_usd_per_gb_month == 0.004
    assert prices["s3-glacier-instant-retrieval"].retrieval_usd_per_gb == 0.03
    assert prices["s3-glacier-deep-archive"].min_storage_days == 180


def test_one_tb_unread_for_90_days_to_standard_ia(prices):
    s = lifecycle_saving(1024, 90, "s3-standard-ia", prices)
    assert s.cost_now_usd_month == pytest.approx(23.552)        # 1,024 x 0.023
    assert s.cost_after_usd_month == pytest.approx(12.80)        # 1,024 x 0.0125
    assert s.saving_usd_month == pytest.approx(10.752) and s.eligible


def test_one_tb_unread_for_90_days_to_glacier_instant_retrieval_with_reads_and_objects(prices):
    s = lifecycle_saving(1024, 90, "s3-glacier-instant-retrieval", prices)
    assert s.saving_usd_month == pytest.approx(1024 * (0.023 - 0.004))  # 19.456
    # 50 GB read back a month pays 50 x 0.03 = 1.50 USD of retrieval; 10,000 objects cost 0.20 USD to move
    r = lifecycle_saving(1024, 90, "s3-glacier-instant-retrieval", prices, read_gb_per_month=50, objects=10_000)
    assert r.saving_usd_month == pytest.approx(19.456 - 1.50)
    assert r.transition_usd == pytest.approx(0.20)
    assert "10,000 objects" in r.assumptions


def test_intelligent_tiering_prices_by_days_unread_with_monitoring(prices):
    s90 = lifecycle_saving(1024, 90, "s3-intelligent-tiering", prices, objects=1000)
    assert s90.saving_usd_month == pytest.approx(1024 * (0.023 - 0.004) - 0.0025)
    s30 = lifecycle_saving(1024, 30, "s3-intelligent-tiering", prices, objects=1000)
    assert s30.saving_usd_month == pytest.approx(1024 * (0.023 - 0.0125) - 0.0025)


def test_options_rank_eligible_first_and_deep_archive_needs_180_days(prices):
    options = lifecycle_options(1024, 90, prices)
    assert options[0].to_class == "s3-glacier-flexible-retrieval"  # 1,024 x (0.023 - 0.0036) = 19.8656
    assert options[0].saving_usd_month == pytest.approx(19.8656)
    deep = next(o for o in options if o.to_class == "s3-glacier-deep-archive")
    assert not deep.eligible and options[-1] is deep
    assert lifecycle_saving(1024, 180, "s3-glacier-deep-archive", prices).eligible


def test_a_bad_price_file_is_one_error(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("class,storage_usd_per_gb_month,retrieval_usd_per_gb,transition_usd_per_1000_objects,"
                    "min_storage_days,monitoring_usd_per_1000_objects_month\ns3-standard,cheap,0,0,0,0\n")
    with pytest.raises(UsageError) as info:
        load_storage_prices(path)
    assert info.value.row == 2 and info.value.column == "storage_usd_per_gb_month"
