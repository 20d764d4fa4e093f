"""Published anchors for the dense-task architectures, read from the installed torchvision.

torchvision's weight enums carry the figures it publishes for each architecture: COCO val2017 box
mAP for the detectors, mIoU on the COCO subset with VOC labels for the segmenters, GFLOPS at its
own input size, and the parameter count. The weights themselves are not available offline, so
these figures anchor the architectures only: shrink's references are trained on the composed
Fashion-MNIST scenes, at 128x128 and with 11 classes, and are not comparable number for number.

    .venv/bin/python benchmarks/dense_anchors.py

Prints the table and writes out/dense_anchors.md (benchmarks/run_all.py copies it to
docs/measured/local-dense-anchors.md). No model is built or run.
"""

from __future__ import annotations

from pathlib import Path

from shrink.fileio import write_text_atomic

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "out" / "dense_anchors.md"
DETECTORS = ["ssdlite320_mobilenet_v3_large", "fasterrcnn_mobilenet_v3_large_320_fpn", "fcos_resnet50_fpn",
             "retinanet_resnet50_fpn"]
SEGMENTERS = ["lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "fcn_resnet50", "deeplabv3_resnet50"]


def rows() -> list[tuple[str, ...]]:
    import torchvision

    table = []
    for prefix, names in (("tvdet", DETECTORS), ("tvseg", SEGMENTERS)):
        for name in names:
            weights = torchvision.models.get_model_weights(name).DEFAULT
            meta = weights.meta
            (dataset, metrics), = meta["_metrics"].items()
            metric = (f"box mAP {metrics['box_map']}" if "box_map" in metrics
                      else f"mIoU {metrics['miou']}, pixel acc {metrics['pixel_acc']}")
            table.append((f"{prefix}:{name}", str(weights).split(".", 1)[1], dataset, metric,
                          f"{meta['_ops']:.3f}", f"{meta['num_params'] / 1e6:.2f}"))
    return table


def markdown() -> str:
    import torchvision

    head = ["| model | torchvision weights | dataset | published metric | GFLOPS (its input size) | params (M) |",
            "|---|---|---|---|---|---|"]
    body = ["| " + " | ".join(r) + " |" for r in rows()]
    return (f"torchvision {torchvision.__version__}, read from its weight enums "
            "(`torchvision.models.get_model_weights(NAME).DEFAULT.meta`).\n\n" + "\n".join(head + body) + "\n")


def main() -> int:
    text = markdown()
    write_text_atomic(OUT, "## Published anchors for the dense-task architectures (benchmarks/dense_anchors.py)\n\n" + text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
