"""Reports: Markdown next to its plot files, and one self-contained HTML file (plots embedded).

    files = write_report(directory, "report", title, blocks)

Both renderings come from the same blocks (shrink.report.document), so they never disagree.
"""

from __future__ import annotations

from pathlib import Path

from shrink.fileio import write_bytes_atomic, write_text_atomic
from shrink.report.document import Block, images, render_html, render_markdown


def write_report(directory: Path, stem: str, title: str, blocks: list[Block]) -> list[str]:
    """Write the plots, STEM.md and STEM.html into `directory` (each atomically); returns the file
    names written, plots first."""
    written = []
    for image in images(blocks):
        write_bytes_atomic(directory / image.file, image.png)
        written.append(image.file)
    write_text_atomic(directory / f"{stem}.md", render_markdown(title, blocks))
    write_text_atomic(directory / f"{stem}.html", render_html(title, blocks))
    return written + [f"{stem}.md", f"{stem}.html"]


__all__ = ["write_report"]
