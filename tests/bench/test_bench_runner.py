"""The interleaving order, warmup and stopping rules, checked with fake runners and a fake clock."""

from shrink.bench.runner import (
    MAX_BLOCK_RUNS,
    TimingSettings,
    balanced_block_runs,
    measure_interleaved,
    round_robin_schedule,
    warm_up,
)


class FakeClock:
    """Time advances only when a fake runner 'works', so the tests never depend on real speed."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_runner(name: str, cost_s: float, clock: FakeClock, log: list):
    def run_once():
        log.append(name)
        clock.now += cost_s

    return run_once


def test_round_robin_schedule():
    assert round_robin_schedule(3, 2) == [0, 1, 2, 0, 1, 2]
    assert round_robin_schedule(1, 3) == [0, 0, 0]


def test_blocks_are_interleaved_round_robin_after_warmup():
    clock, log = FakeClock(), []
    runners = [fake_runner(n, 0.001, clock, log) for n in "ABC"]
    settings = TimingSettings(warmup_runs=2, warmup_seconds=0.0, min_runs=6, min_seconds=0.0, block_runs=3)
    run = measure_interleaved(runners, settings, clock=clock)
    warmup, measured = log[:6], log[6:]
    assert warmup == list("AABBCC")
    assert measured == list("AAABBBCCC" "AAABBBCCC")
    assert run.schedule == (0, 1, 2, 0, 1, 2)
    assert run.rounds == 2
    assert [len(s) for s in run.samples_s] == [6, 6, 6]
    assert run.warmup_runs == (2, 2, 2)


def test_measuring_continues_until_min_seconds_for_every_candidate():
    clock, log = FakeClock(), []
    # Costs that are exact in binary floating point, so the counts below are exact too.
    slow, fast = fake_runner("slow", 1.0, clock, log), fake_runner("fast", 0.125, clock, log)
    settings = TimingSettings(warmup_runs=1, warmup_seconds=0.0, min_runs=1, min_seconds=5.0, block_runs=1)
    run = measure_interleaved([slow, fast], settings, clock=clock)
    # Blocks of equal length: the fast one runs 8 times per block, so both reach 5 s in 5 rounds
    # (whole rounds of equal run counts would have kept the slow one running for 40 s).
    assert run.block_runs == (1, 8)
    assert run.rounds == 5
    assert len(run.samples_s[0]) == 5 and len(run.samples_s[1]) == 40
    assert all(s == 1.0 for s in run.samples_s[0])
    assert all(s == 0.125 for s in run.samples_s[1])
    assert not run.capped


def test_balanced_blocks_are_bounded():
    assert balanced_block_runs([1.0, 0.5, 1e-9], 10) == [10, 20, MAX_BLOCK_RUNS]
    assert balanced_block_runs([0.001, 0.004], 3) == [12, 3]


def test_the_wall_clock_cap_stops_measuring_and_says_so():
    clock, log = FakeClock(), []
    settings = TimingSettings(warmup_runs=1, warmup_seconds=0.0, min_runs=1, min_seconds=100.0, block_runs=1,
                              max_seconds=3.0)
    run = measure_interleaved([fake_runner("A", 1.0, clock, log)], settings, clock=clock)
    assert run.capped and run.rounds == 3 and len(run.samples_s[0]) == 3


def test_measuring_continues_until_min_runs():
    clock, log = FakeClock(), []
    settings = TimingSettings(warmup_runs=1, warmup_seconds=0.0, min_runs=25, min_seconds=0.0, block_runs=10)
    run = measure_interleaved([fake_runner("A", 1.0, clock, log)], settings, clock=clock)
    assert len(run.samples_s[0]) == 30  # whole blocks: 3 x 10 >= 25


def test_warmup_needs_both_runs_and_seconds():
    clock, log = FakeClock(), []
    runs, seconds = warm_up(fake_runner("A", 0.125, clock, log), runs=2, seconds=1.0, clock=clock)
    assert runs == 8 and seconds == 1.0  # 1 s needed more than 2 runs
    clock2, log2 = FakeClock(), []
    runs, _ = warm_up(fake_runner("A", 1.0, clock2, log2), runs=10, seconds=1.0, clock=clock2)
    assert runs == 10  # 10 runs needed more than 1 s


def test_progress_lines_are_reported():
    clock, log, lines = FakeClock(), [], []
    settings = TimingSettings(warmup_runs=1, warmup_seconds=0.0, min_runs=2, min_seconds=0.0, block_runs=2)
    measure_interleaved([fake_runner("A", 0.01, clock, log)], settings, labels=["a.onnx"], clock=clock, progress=lines.append)
    assert any("warmed up a.onnx" in line for line in lines)
    assert any(line.startswith("round 1:") for line in lines)
