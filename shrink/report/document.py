"""A report as a list of blocks, rendered to Markdown (plots as files next to it) and to one
self-contained HTML file (plots embedded as base64, no network needed to open it).

Inline markup in text: **bold** and `code`, the same in both renderings.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Callout:
    """A boxed warning the reader must not miss (e.g. synthetic data)."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()  # right-align these columns


@dataclass(frozen=True)
class Image:
    file: str  # written next to the Markdown file
    caption: str
    png: bytes


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


Block = Union[Heading, Paragraph, Callout, Bullets, Table, Image, Code]


# ----------------------------------------------------------------------------- Markdown


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(table: Table) -> str:
    numeric = table.numeric or (False,) * len(table.header)
    lines = ["| " + " | ".join(_md_cell(h) for h in table.header) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _md_block(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Callout):
        return "> **" + block.text + "**"
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Image):
        return f"![{block.caption}]({block.file})\n\n*{block.caption}*"
    if isinstance(block, Code):
        return f"```{block.language}\n{block.text}\n```"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_markdown(title: str, blocks: list[Block]) -> str:
    return "\n\n".join([f"# {title}"] + [_md_block(b) for b in blocks]) + "\n"


# ----------------------------------------------------------------------------- HTML

CSS = """
body { font: 15px/1.5 -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif; color: #1f2328;
       max-width: 1100px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.35em; border-bottom: 1px solid #d0d7de; padding-bottom: .25em; margin-top: 1.8em; }
h3 { font-size: 1.1em; margin-top: 1.4em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 14px; display: block; overflow-x: auto; }
th, td { border: 1px solid #d0d7de; padding: 5px 10px; vertical-align: top; }
th { background: #f6f8fa; text-align: left; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
tr.shipped td { background: #dafbe1; }
code { background: #f6f8fa; padding: .1em .35em; border-radius: 4px; font-size: 90%; }
pre { background: #f6f8fa; padding: 1em; border-radius: 6px; overflow-x: auto; font-size: 13px; }
pre code { background: none; padding: 0; }
.callout { border-left: 5px solid #d1242f; background: #ffebe9; padding: .8em 1em; margin: 1em 0;
           font-weight: 600; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #59636e; font-size: 13px; margin-top: .3em; }
"""


def inline_html(text: str) -> str:
    """Escape, then **bold** and `code`."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)


def _html_table(table: Table) -> str:
    numeric = table.numeric or (False,) * len(table.header)
    head = "".join(f"<th>{inline_html(h)}</th>" for h in table.header)
    rows = []
    for row in table.rows:
        # A row whose first cell is bold is the shipped one: highlight it.
        css = ' class="shipped"' if row and row[0].startswith("**") else ""
        cells = "".join(f'<td{" class=num" if n else ""}>{inline_html(c)}</td>' for c, n in zip(row, numeric))
        rows.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{inline_html(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{inline_html(block.text)}</p>"
    if isinstance(block, Callout):
        return f'<div class="callout">{inline_html(block.text)}</div>'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{inline_html(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Image):
        data = base64.b64encode(block.png).decode("ascii")
        return (f'<figure><img alt="{html.escape(block.caption)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{inline_html(block.caption)}</figcaption></figure>")
    if isinstance(block, Code):
        return f"<pre><code>{html.escape(block.text)}</code></pre>"
    raise TypeError(f"unknown block {type(block).__name__}")


def render_html(title: str, blocks: list[Block]) -> str:
    body = "\n".join(_html_block(b) for b in blocks)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n")


def images(blocks: list[Block]) -> list[Image]:
    return [b for b in blocks if isinstance(b, Image)]
