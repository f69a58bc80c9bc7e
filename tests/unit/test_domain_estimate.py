"""Downtime estimate from measured rates."""

from __future__ import annotations

import pytest

from rds_migration.estimate import MB, Rates, estimate_downtime, format_duration, rate_from_samples


def test_defaults_when_nothing_is_measured():
    rates = Rates.from_samples()
    assert rates == Rates(samples=rates.samples)
    assert "default" in rates.describe()


def test_median_of_recent_samples_ignores_outliers_and_junk():
    samples = [(100 * MB, 1.0)] * 4 + [(100 * MB, 100.0), (0, 5.0), (5 * MB, 0.0)]
    rate, used = rate_from_samples(samples, default_mb_s=1.0)
    assert rate == 100.0 and used == 5


def test_only_recent_samples_count():
    old = [(10 * MB, 1.0)] * 20
    new = [(50 * MB, 1.0)] * 10
    assert rate_from_samples(old + new, 1.0) == (50.0, 10)


def test_from_samples_and_describe():
    rates = Rates.from_samples(
        backup=[(200 * MB, 2.0)],
        upload=[(80 * MB, 2.0)],
        restore=[(90 * MB, 1.0)],
        rds_task_latency=[30, 50, 40],
    )
    assert (rates.backup_mb_s, rates.upload_mb_s, rates.restore_mb_s) == (100.0, 40.0, 90.0)
    assert rates.rds_task_latency_s == 40
    assert "median of 1 samples" in rates.describe() and "median of 3" in rates.describe()


def test_estimate_parts_and_total():
    rates = Rates(backup_mb_s=100, upload_mb_s=50, restore_mb_s=100, rds_task_latency_s=30)
    est = estimate_downtime(rates, 500 * MB)
    assert list(est.parts) == ["freeze", "tail_backup", "upload", "import", "open", "validate"]
    assert est.parts["tail_backup"] == pytest.approx(5 + 5)
    assert est.parts["upload"] == pytest.approx(2 + 10)
    assert est.parts["import"] == pytest.approx(30 + 5)
    assert est.total_seconds == pytest.approx(sum(est.parts.values()))
    assert est.to_dict()["total_seconds"] == round(est.total_seconds, 1)
    assert est.describe().startswith("about 3 min")


def test_sync_checkdb_grows_with_data_size():
    rates = Rates(checkdb_mb_s=100)
    fast = estimate_downtime(rates, MB, data_size_bytes=100_000 * MB)
    slow = estimate_downtime(rates, MB, data_size_bytes=100_000 * MB, check_db_mode="SyncExecuteDBCheck")
    assert slow.parts["open"] - fast.parts["open"] == pytest.approx(1000)


def test_estimate_grows_with_pending_log():
    rates = Rates()
    assert estimate_downtime(rates, 10 * MB).total_seconds < estimate_downtime(rates, 1000 * MB).total_seconds


@pytest.mark.parametrize(
    ("kwargs", "match"), [({"pending": -1}, ">= 0"), ({"mode": "Fast"}, "check_db_mode")]
)
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        estimate_downtime(
            Rates(), kwargs.get("pending", 0), check_db_mode=kwargs.get("mode", "AsyncExecuteDBCheck")
        )


def test_bad_rates():
    with pytest.raises(ValueError, match="upload_mb_s"):
        Rates(upload_mb_s=0)


@pytest.mark.parametrize(
    ("seconds", "text"), [(5.4, "5 s"), (75, "1 min 15 s"), (3725, "1 h 02 min"), (-3, "0 s")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text
