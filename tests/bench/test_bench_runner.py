"""The interleaving order, warmup and stopping rules, checked with fake runners and a fake clock."""

from shrink.bench.runner import (
    MAX_BLOCK_RUNS,
    InProcessRunner,
    TimingSettings,
    balanced_block_runs,
    measure_in_processes,
    measure_interleaved,
    process_round_settings,
    rotation,
    round_robin_schedule,
    warm_up,
)


class FakeClock:
    """Time advances only when a fake runner 'works', so the tests never depend on real speed."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def fake_runner(name: str, cost_s: float, clock: FakeClock, log: list) -> InProcessRunner:
    def run_once():
        log.append(name)
        clock.now += cost_s

    return InProcessRunner(run_once, clock)


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
    runs, seconds = warm_up(fake_runner("A", 0.125, clock, log).run_once, runs=2, seconds=1.0, clock=clock)
    assert runs == 8 and seconds == 1.0  # 1 s needed more than 2 runs
    clock2, log2 = FakeClock(), []
    runs, _ = warm_up(fake_runner("A", 1.0, clock2, log2).run_once, runs=10, seconds=1.0, clock=clock2)
    assert runs == 10  # 10 runs needed more than 1 s


def test_progress_lines_are_reported():
    clock, log, lines = FakeClock(), [], []
    settings = TimingSettings(warmup_runs=1, warmup_seconds=0.0, min_runs=2, min_seconds=0.0, block_runs=2)
    measure_interleaved([fake_runner("A", 0.01, clock, log)], settings, labels=["a.onnx"], clock=clock, progress=lines.append)
    assert any("warmed up a.onnx" in line for line in lines)
    assert any(line.startswith("round 1:") for line in lines)


class PoolRunner:
    """A fake worker whose thread pool 'spins' after each block until it is settled; it logs every
    event, so the test can see whether two pools were ever alive at once."""

    def __init__(self, name: str, cost_s: float, clock: FakeClock, events: list, alive: set):
        self.name, self.cost_s, self.clock, self.events, self.alive = name, cost_s, clock, events, alive

    def warm_up(self, runs, seconds):
        self._start()
        self.clock.now += runs * self.cost_s
        return runs, runs * self.cost_s

    def _start(self):
        self.events.append(("start", self.name, frozenset(self.alive)))
        self.alive.add(self.name)  # busy now, and spinning after it returns, until settled

    def run_block(self, runs):
        self._start()
        self.clock.now += runs * self.cost_s
        return [self.cost_s] * runs

    def settle(self):
        self.alive.discard(self.name)
        self.events.append(("settled", self.name, frozenset(self.alive)))
        return True

    def close(self):
        self.events.append(("closed", self.name, frozenset(self.alive)))


def test_no_block_starts_while_another_candidates_pool_is_alive():
    clock, events, alive = FakeClock(), [], set()
    spawned = []

    def spawn(index):
        spawned.append(index)
        return PoolRunner("AB"[index], (0.001, 0.004)[index], clock, events, alive)

    settings = TimingSettings(warmup_runs=2, warmup_seconds=0.0, min_runs=12, min_seconds=0.0, block_runs=3)
    run = measure_in_processes(spawn, 2, settings, processes=3, clock=clock)
    starts = [e for e in events if e[0] == "start"]
    assert starts and all(others == frozenset() for _, _, others in starts)  # nobody else alive at any start
    assert spawned == [0, 1, 1, 0, 0, 1]  # fresh runners every round, the order rotated
    assert [len(r) for r in run.per_process_s] == [3, 3]
    assert all(len(chunk) >= 4 for chunks in run.per_process_s for chunk in chunks)  # 12 runs split over 3 rounds
    assert run.settled and all(run.settled)
    assert sum(1 for e in events if e[0] == "closed") == 6


def test_a_process_round_gets_its_share_and_what_is_left_of_the_cap():
    settings = TimingSettings(warmup_runs=5, warmup_seconds=1.0, min_runs=50, min_seconds=5.0, block_runs=10,
                              max_seconds=60.0)
    first = process_round_settings(settings, 4, spent_s=0.0, round_index=0)
    assert (first.min_runs, first.min_seconds, first.max_seconds) == (13, 1.25, 15.0)
    last = process_round_settings(settings, 4, spent_s=50.0, round_index=3)
    assert last.max_seconds == 10.0 and last.warmup_seconds == 1.0  # every fresh process warms up in full
    assert rotation(3, 0) == [0, 1, 2] and rotation(3, 1) == [1, 2, 0]
