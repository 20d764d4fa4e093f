"""Markdown and HTML come from the same blocks; HTML embeds its images and escapes text."""

from __future__ import annotations

import base64

from shrink.report.document import Bullets, Callout, Code, Heading, Image, Paragraph, Table, inline_html, render_html, render_markdown

PNG = b"\x89PNG\r\n\x1a\nfake"


def blocks():
    return [Heading("Candidates"), Paragraph("**Shipped** `model.onnx` <now>"), Callout("SYNTHETIC"),
            Bullets(("a", "b")), Table(("name", "ms"), (("x|y", "1.0"), ("**z**", "2.0")), (False, True)),
            Image("latency.png", "Latency", PNG), Code("print('<hi>')", "python")]


def test_markdown_references_images_and_escapes_table_pipes():
    md = render_markdown("T", blocks())
    assert md.startswith("# T\n")
    assert "![Latency](latency.png)" in md
    assert "| x\\|y | 1.0 |" in md and "|---|---:|" in md
    assert "> **SYNTHETIC**" in md and "```python" in md


def test_html_embeds_images_and_needs_no_network():
    page = render_html("T", blocks())
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in page
    assert "http://" not in page and "https://" not in page
    assert '<div class="callout">SYNTHETIC</div>' in page
    assert '<tr class="shipped">' in page  # the bold row is the shipped one
    assert "<td class=num>1.0</td>" in page


def test_inline_markup_is_escaped_first():
    assert inline_html("**a** `b` <c> & d") == "<strong>a</strong> <code>b</code> &lt;c&gt; &amp; d"
    assert "&lt;hi&gt;" in render_html("T", [Code("<hi>")])
