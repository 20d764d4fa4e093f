"""QuantizeResult reads what shipped and why from its Decision, and records it where it always did."""

from __future__ import annotations

from shrink.quantize.result import Decision, Measured, QuantizeResult, Verdict


def _result() -> QuantizeResult:
    decision = Decision("s8", True, "1.4x faster", (Verdict("s8", True, "1.4x faster"),))
    return QuantizeResult(input_path="in.onnx", output_path="out.onnx", record_path="out.decision.json", sha256="0",
                          mode="auto", config={}, fp32=Measured("fp32"), candidates=(), decision=decision,
                          calibration={}, evaluation={}, layer_sqnr=(), machine={}, bench={}, profile=None, flags=())


def test_shipped_int8_and_reason_are_the_decisions():
    result = _result()
    assert (result.shipped, result.int8, result.reason) == ("s8", True, "1.4x faster")


def test_record_keeps_the_decision_summary_after_sha256():
    record = _result().to_dict()
    assert list(record)[:8] == ["input_path", "output_path", "record_path", "sha256", "shipped", "int8", "reason",
                                "mode"]
    assert (record["shipped"], record["int8"], record["reason"]) == ("s8", True, "1.4x faster")
    assert record["decision"]["shipped"] == "s8"
