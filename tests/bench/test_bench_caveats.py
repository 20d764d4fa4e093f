"""A headline measured under steal or load, or with a failed null test, says so on its own line."""

import pytest

from shrink.bench.caveats import candidate_caveats, machine_caveats, pair_caveats, with_caveats
from shrink.bench.load import CpuTimes, caveats, load_report, read_cpu_times
from shrink.bench.results import SelfCheck

IDLE = "cpu  100 0 100 800 0 0 0 0 0 0"  # ticks: user nice system idle iowait irq softirq steal ...


def _times(user, idle, steal) -> CpuTimes:
    return read_cpu_times(f"cpu  {user} 0 0 {idle} 0 0 0 {steal} 0 0")


def test_proc_stat_is_parsed_into_busy_idle_and_steal():
    times = read_cpu_times(IDLE)
    assert (times.busy_s, times.idle_s, times.steal_s) == pytest.approx((2.0, 8.0, 0.0))
    assert read_cpu_times("intr 1 2 3") is None


def test_steal_and_other_processes_are_shares_of_the_elapsed_cpu_time():
    before, after = _times(0, 0, 0), _times(600, 300, 100)  # 10 s of CPU time: 6 busy, 3 idle, 1 stolen
    report = load_report(before, after, own_cpu_s=4.0, load=(0.5, 1.9))
    assert report.seconds == pytest.approx(10.0)
    assert report.steal_share == pytest.approx(0.10) and report.foreign_share == pytest.approx(0.20)
    assert caveats(report) == ["10% of the CPU time was stolen by the hypervisor", "other processes used 20% of the CPU"]
    quiet = load_report(before, _times(400, 600, 0), own_cpu_s=4.0, load=(0.1, 0.2))
    assert caveats(quiet) == []
    assert caveats(load_report(None, None, 0.0, (None, None))) == []


def test_a_failed_null_test_and_the_cap_are_machine_caveats():
    failed = SelfCheck("a.onnx", 1.06, 1.04, 1.08, 0.03, False)
    passed = SelfCheck("a.onnx", 1.01, 0.99, 1.03, 0.03, True)
    assert machine_caveats(None, passed, False) == []
    lines = machine_caveats(None, failed, True)
    assert "failed the null test" in lines[0] and "1.060x" in lines[0] and "cut short" in lines[1]


def test_the_headline_line_carries_every_caveat_of_its_pair():
    result = {"caveats": ["other processes used 20% of the CPU"],
              "candidates": [{"label": "dense fp32", "latency": {"cv": 0.4}, "spread": {"within_cv": 0.02}},
                             {"label": "pruned int8", "latency": {"cv": 0.04},
                              "spread": {"within_cv": 0.15, "bimodal": True}}]}
    dense = {"caveats": candidate_caveats(result, "dense fp32")}
    shipped = {"caveats": candidate_caveats(result, "pruned int8")}
    assert dense["caveats"] == ["other processes used 20% of the CPU"]  # a few outliers do not make it noisy
    line = with_caveats("9.32x faster", pair_caveats(dense["caveats"], shipped["caveats"]))
    assert line == ("9.32x faster (CAVEAT: other processes used 20% of the CPU; pruned int8 was noisy (CV 15% of its "
                    "runs); pruned int8 is bimodal across processes)")
    assert with_caveats("9.32x faster", []) == "9.32x faster"
