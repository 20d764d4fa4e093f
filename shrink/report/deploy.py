"""The report's "Deploying" section: the preprocessing record in words and as code to paste.

Both are generated from the same record the shipped file carries, so the two cannot disagree."""

from __future__ import annotations


from shrink.data.preprocessing import Preprocessing
from shrink.report.document import Block, Bullets, Code, Heading, Paragraph
from shrink.run.summary import RunSummary
from shrink.tasks import Task


def preprocess_code(record: Preprocessing) -> str:
    """A `preprocess(path)` function that needs only PIL and numpy and does the record's steps."""
    h, w = record.crop
    lines = ["import numpy as np", "from PIL import Image", "", "",
             "def preprocess(path):",
             f"    image = Image.open(path).convert({record.color!r})"]
    if record.resize is not None:
        lines += ["    width, height = image.size",
                  f"    short = {record.resize}  # the shorter side after the resize",
                  "    size = (short, int(short * height / width)) if width <= height else (int(short * width / height), short)",
                  "    if size != image.size:",
                  f"        image = image.resize(size, Image.Resampling.{record.interpolation.upper()})",
                  "    width, height = image.size",
                  f"    left, top = (width - {w}) // 2, (height - {h}) // 2",
                  f"    image = image.crop((left, top, left + {w}, top + {h}))  # the centre {w}x{h}"]
    else:
        lines += [f"    assert image.size == ({w}, {h}), 'the model takes {w}x{h} images, without a resize'"]
    lines += [f"    x = np.asarray(image, dtype=np.float32) * np.float32({record.scale!r})",
              "    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)  # HWC -> CHW",
              f"    mean = np.array({list(record.mean)!r}, dtype=np.float32).reshape(-1, 1, 1)",
              f"    std = np.array({list(record.std)!r}, dtype=np.float32).reshape(-1, 1, 1)",
              "    return ((x - mean) / std)[None]  # NCHW float32, batch of one"]
    return "\n".join(lines)


def deploy_section(summary: RunSummary) -> list[Block]:
    pre, shipped = summary.preprocessing, summary.shipped.file
    items = [f"input `{pre['input_name']}`: shape {pre['input_shape']} ({pre['layout']}, {pre['dtype']})"]
    labels = summary.labels
    if labels:
        items.append("labels (output index order): " + ", ".join(f"{i}: {c}" for i, c in enumerate(labels)))
    row = next((c for c in summary.candidates if c.shipped), None)
    if row and row.domains is not None:
        checked = ", ".join(row.checked_on or [])
        specific = row.runtime_specific_ops or []
        items.append((f"operators: standard ONNX only ({', '.join(sorted(row.domains))}), which mainstream "
                      f"runtimes load" if not specific else
                      f"operators: onnxruntime's own {', '.join(specific)} (other runtimes refuse them)")
                     + (f"; checked on {checked}" if checked else ""))
    blocks: list[Block] = [Heading(f"Deploying {shipped}"), Bullets(tuple(items))]
    if pre.get("record") is None:  # synthetic data: no images, so no preprocessing to keep
        return blocks + [Paragraph("No preprocessing is recorded: this run fed random tensors (synthetic data).")]
    record = Preprocessing.from_dict(pre["record"])
    blocks += [Paragraph("Preprocessing, the same record as the file's `preprocessing` metadata and the manifest; "
                         "every accuracy in this report was measured this way:"),
               Bullets(tuple(f"{i}. {step}" for i, step in enumerate(pre["steps"], 1)))]
    run = (f"\n\nimport onnxruntime as ort\n\n"
           f"session = ort.InferenceSession({shipped!r}, providers=['CPUExecutionProvider'])\n")
    feed = f"{{{pre['input_name']!r}: preprocess('image.png')}}"
    if summary.task is Task.SEGMENTATION:
        run += (f"logits = session.run(None, {feed})[0]  # (1, classes, H, W)\n"
                "mask = logits[0].argmax(0)  # a class id per pixel" + (f"; labels: {list(labels)!r}" if labels else ""))
    elif summary.task is Task.DETECTION:
        spec = summary.inputs["model"]["spec"]
        blocks.append(Paragraph("The file ends at the detector's heads. Decoding boxes against the anchors and "
                                "non-maximum suppression run outside the graph, in fp32; the reference "
                                f"implementation is torchvision's own post-processing for {spec['name']}, "
                                "rebuilt by shrink from the architecture's name (weights play no part in it):"))
        run += (f"outputs = session.run(None, {feed})  # the raw head outputs, in the file's order\n\n"
                "from shrink.models.decoding import detection_decoder\n\n"
                f"decode = detection_decoder({spec['name']!r}, num_classes={spec['num_classes']}, "
                f"input_size={tuple(spec['input_size'])!r})\n"
                "found = decode(outputs)[0]  # boxes (x1, y1, x2, y2 in input pixels), scores, labels\n"
                + (f"labels = {list(labels)!r}\n" if labels else "")
                + "print([(labels[int(l)] if labels else int(l), float(s)) for l, s in zip(found['labels'], found['scores'])][:5])")
    else:
        run += (f"logits = session.run(None, {feed})[0]\n"
                + ("labels = " + repr(list(labels)) + "\nprint(labels[int(logits.argmax())])" if labels
                   else "print(int(logits.argmax()))"))
    return blocks + [Code(preprocess_code(record) + run, "python")]
