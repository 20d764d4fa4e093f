"""What `shrink run` refuses while it loads its inputs, before the run directory is touched."""

from shrink.cli import main


def test_a_recipe_that_trains_faster_rcnn_is_refused_before_any_data_is_read(tmp_path, capsys):
    recipe = tmp_path / "frcnn.yaml"
    recipe.write_text('name: frcnn\n'
                      'model: {source: "tvdet:fasterrcnn_mobilenet_v3_large_320_fpn", num_classes: 11, '
                      'input_size: [128, 128]}\n'
                      'data: {name: fmnist-det}\n', encoding="utf-8")
    assert main(["run", str(recipe), "--out", str(tmp_path / "run")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the run's progress lines, one error line
    assert last.startswith("shrink run: error: Faster R-CNN cannot be fine-tuned or distilled by shrink")
    assert last.endswith("set recover.train: null in the recipe")
    assert not (tmp_path / "run").exists()
