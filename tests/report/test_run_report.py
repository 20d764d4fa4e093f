"""The run report: a table per candidate, where every number was measured, honest labels."""

from __future__ import annotations

from report_fixtures import LAYERS, make_summary, typed

from shrink.report import run_report, write_report
from shrink.report.document import Callout, Image, Table, render_markdown
from shrink.run.manifest import summary_lines


def markdown(summary) -> str:
    title, blocks = run_report.build(typed(summary), LAYERS, draw=False)  # text only: plots are tested below
    return render_markdown(title, blocks)


def test_candidate_table_has_every_column_and_marks_the_shipped_file():
    _, blocks = run_report.build(typed(make_summary()), LAYERS, draw=False)
    table = next(b for b in blocks if isinstance(b, Table))
    assert table.header == ("candidate", "file", "params", "MACs", "file size", "top-1 PyTorch", "top-1 onnxruntime",
                            "p50 ms [95% CI]", "p90 ms", "speedup vs dense [95% CI]")
    names = [row[0] for row in table.rows]
    assert names == ["dense fp32", "pruned fp32", "**pruned int8** (shipped)"]
    dense, pruned, int8 = table.rows
    assert dense[9] == "1.00× (baseline)" and int8[9] == "5.90× [5.31, 6.49]"
    assert pruned[2] == "2.80 M" and pruned[3] == "140.00 M" and int8[4] == "2.86 MB"
    assert int8[5] == "—"  # no PyTorch accuracy for an ONNX-only int8 file


def test_report_says_where_numbers_come_from():
    text = markdown(make_summary())
    assert "a random subset (seed 0) of 1000 of the 10000 test images, not the whole test set" in text
    assert "±1.5 pt" in text  # sampling error at 1000 images near 94%
    assert "Test CPU @ 2.00GHz" in text and "2 intra-op thread(s), batch 1" in text
    assert "on 2048 of the 60000 training images" in text
    assert "The model card reports 95.29% on the whole test set" in text


def test_int8_not_shipped_says_why():
    summary = make_summary(int8=False)
    text = markdown(summary)
    assert "| pruned int8 | not shipped |" in text
    assert "**pruned int8**: not shipped: no int8 recipe is faster" in text
    assert any(line.startswith("int8 not shipped: no int8 recipe is faster") for line in summary_lines(typed(summary)))


def test_synthetic_run_is_labeled_and_claims_no_accuracy():
    summary = make_summary(synthetic=True)
    title, blocks = run_report.build(typed(summary), LAYERS)
    assert isinstance(blocks[0], Callout) and "SYNTHETIC" in blocks[0].text
    assert "accuracy_latency.png" not in [b.file for b in blocks if isinstance(b, Image)]
    text = render_markdown(title, blocks)
    assert "**Accuracy**: not measured" in text
    assert "Top-1" not in blocks[1].text
    assert any("SYNTHETIC" in line for line in summary_lines(typed(summary)))


def test_summary_lines_are_at_most_four_plus_the_report_path():
    for kwargs in ({}, {"int8": False}, {"synthetic": True}):
        assert 1 <= len(summary_lines(typed(make_summary(**kwargs)))) <= 4


def test_write_report_writes_plots_md_and_html(tmp_path):
    title, blocks = run_report.build(typed(make_summary()), LAYERS)
    files = write_report(tmp_path, "report", title, blocks)
    assert files == ["latency.png", "accuracy_latency.png", "widths.png", "report.md", "report.html"]
    assert all((tmp_path / f).stat().st_size > 0 for f in files)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_headline_measured_under_load_carries_the_caveat_on_its_line():
    from shrink.run.manifest import summary_lines

    summary = make_summary()
    caveat = "other processes used 35% of the CPU"
    for c in summary["candidates"]:
        c["caveats"] = [caveat]
    latency_line = next(line for line in summary_lines(typed(summary)) if line.startswith("latency p50"))
    assert latency_line.endswith(f"(CAVEAT: {caveat})")
    title, blocks = run_report.build(typed(summary), LAYERS, draw=False)
    headline = render_markdown(title, blocks).split("\n\n")[1]
    assert "faster (**caveat: other processes used 35% of the CPU**)" in headline


def test_the_int8_speedup_is_shown_each_time_it_was_measured():
    summary = make_summary()
    summary["int8_speedup"] = {"agree": False, "figures": [
        {"figure": "quantize search", "method": "worker processes, 2 round(s)", "ratio": 2.15, "ci_low": 2.13,
         "ci_high": 2.17},
        {"figure": "bench stage", "method": "worker processes, 4 round(s)", "ratio": 2.5, "ci_low": 2.4,
         "ci_high": 2.6}]}
    title, blocks = run_report.build(typed(summary), LAYERS, draw=False)
    text = render_markdown(title, blocks)
    assert "| quantize search | worker processes, 2 round(s) | 2.15× [2.13, 2.17] |" in text
    assert "do NOT all overlap" in text


def test_reconstruction_reports_the_images_it_used_not_the_ones_asked_for():
    """A small folder leaves fewer training images than the recipe's reconstruct_images."""
    summary = make_summary()
    summary["recovery"]["config"] = {**summary["recovery"]["config"], "reconstruct_images": 512}
    summary["recovery"]["reconstruction_images"] = 90
    text = markdown(summary)
    assert "on 90 training images" in text and "on 512 training images" not in text


def test_the_deploy_section_gives_every_preprocessing_step_and_code_that_does_them():
    text = markdown(make_summary())
    deploy = text[text.index("## Deploying"):]
    assert "convert it to one grey channel" in deploy and "must already be 28x28" in deploy
    assert "mean [0.286], std [0.353]" in deploy and "def preprocess(path):" in deploy
