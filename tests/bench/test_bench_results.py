"""BenchResult derives threads and batch from its config, and writes them where records always had them."""

from __future__ import annotations

from shrink.bench.config import BenchConfig
from shrink.bench.machine import MachineInfo
from shrink.bench.results import BenchResult


def _machine(physical_cores: int) -> MachineInfo:
    return MachineInfo("host", "linux", "3.12", "cpu", ("avx2",), 8, physical_cores, physical_cores, None, None,
                       None, None, (), None, None, None)


def _result(config: BenchConfig) -> BenchResult:
    return BenchResult(schema="s", created_utc="t", config=config, machine=_machine(6), inputs="i",
                       load_average_1m=(None, None), rounds=1, schedule=(0,), candidates=(), profile=None, notes=())


def test_threads_default_to_the_physical_cores_and_batch_comes_from_the_config():
    assert (_result(BenchConfig(batch=3)).threads, _result(BenchConfig(batch=3)).batch) == (6, 3)
    assert _result(BenchConfig(threads=2)).threads == 2


def test_record_keeps_threads_and_batch_right_after_config():
    record = _result(BenchConfig(batch=3)).to_dict()
    assert list(record)[:6] == ["schema", "created_utc", "config", "threads", "batch", "machine"]
    assert (record["config"]["threads"], record["threads"], record["batch"]) == (None, 6, 3)
