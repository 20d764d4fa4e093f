"""Data of another task than the model's is one line and exit 2, from every command, before any
images are read the model's way (whose own complaint would hide the mistake)."""

import pytest
from cli_helpers import one_error_line, shrink

SEGMENTER = ("tvseg:lraspp_mobilenet_v3_large", "--num-classes", "11", "--input-size", "128")


@pytest.mark.parametrize("argv, pattern", [
    (("eval", *SEGMENTER, "--data", "fmnist"),
     "the model is a segmentation model but fmnist is classification data; choose segmentation data: fmnist-seg"),
    pytest.param(("eval", "fmnist_resnet18", "--data", "fmnist-det"),
                 "the model is a classification model but fmnist-det is detection data; choose classification "
                 "data: fmnist", marks=pytest.mark.slow),
    pytest.param(("eval", *SEGMENTER, "--data", "coco:/nowhere"),
                 "the model is a segmentation model but coco:/nowhere is detection data", marks=pytest.mark.slow),
], ids=["segmenter-on-fmnist", "classifier-on-fmnist-det", "segmenter-on-coco"])
def test_data_of_another_task_is_one_line(argv, pattern):
    one_error_line(shrink(*argv), pattern)


@pytest.mark.slow  # 7 s; the fast case above is the same check in eval
def test_a_detector_export_checked_on_classification_data_is_one_line(tmp_path):
    result = shrink("export", "tvdet:ssdlite320_mobilenet_v3_large", "--num-classes", "11", "--input-size", "128",
                    "--data", "fmnist", "--out", tmp_path / "det.onnx")
    one_error_line(result, "the model is a detection model but fmnist is classification data")
    assert not (tmp_path / "det.onnx").exists()
