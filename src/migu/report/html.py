"""The report's page: sections of text, tables and images, rendered as one self-contained HTML file
(images inline as base64 PNG, styles inline, no script, nothing fetched) and as Markdown (text and
tables; the figures are only in the HTML page).
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Image", "Note", "Section", "Table", "render_html", "render_markdown"]


@dataclass
class Image:
    """A PNG figure.

    Attributes:
        png: The PNG bytes.
        title: Shown above the image and used as its alt text.
        caption: Shown below it.
    """

    png: bytes
    title: str
    caption: str = ""


@dataclass
class Table:
    """A table of already-formatted cells.

    Attributes:
        headers: Column names.
        rows: Cells, one list per row.
        caption: Shown above the table.
    """

    headers: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Note:
    """A paragraph; ``kind="warning"`` for what is missing or left out."""

    text: str
    kind: str = "info"


@dataclass
class Section:
    """One part of the report.

    Attributes:
        id: HTML id (the tests and the page's table of contents use it).
        title: Heading.
        about: What the section shows and how to read it.
        items: Its content, in order.
    """

    id: str
    title: str
    about: str
    items: list[Image | Table | Note] = field(default_factory=list)

    @property
    def images(self) -> list[Image]:
        """The section's figures."""
        return [i for i in self.items if isinstance(i, Image)]


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #fafafa; line-height: 1.45; }
header { background: #24364b; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px 0; font-size: 1.5em; }
header p { margin: 0; opacity: 0.85; font-size: 0.9em; }
nav { padding: 8px 32px; background: #e8edf3; font-size: 0.9em; position: sticky; top: 0; }
nav a { margin-right: 14px; color: #24364b; text-decoration: none; }
main { padding: 8px 32px 40px 32px; max-width: 1400px; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 6px; padding: 10px 20px 16px 20px;
          margin: 18px 0; }
section h2 { margin: 6px 0; font-size: 1.2em; }
p.about { color: #4a5563; font-size: 0.92em; margin-top: 2px; }
p.note { font-size: 0.92em; }
p.warning { font-size: 0.92em; color: #8a4b00; background: #fff6e5; padding: 6px 10px; border-radius: 4px; }
.figures { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; border: 1px solid #eef1f4; padding: 6px; border-radius: 4px; max-width: 100%; }
figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85em; color: #4a5563; margin-top: 4px; }
figure .title { font-size: 0.9em; font-weight: 600; margin-bottom: 4px; }
table { border-collapse: collapse; font-size: 0.86em; margin: 8px 0 12px 0; }
caption { text-align: left; font-weight: 600; padding-bottom: 4px; }
th, td { border: 1px solid #dde3ea; padding: 3px 8px; text-align: left; white-space: nowrap; }
th { background: #f1f4f8; }
td.num { text-align: right; }
code { background: #f1f4f8; padding: 0 3px; border-radius: 3px; }
"""


# Cells right-aligned as numbers: "0.312", "40.6 ± 3.6", "+7.9% vs FT", "-".
_NUMBER = re.compile(r"^([-+]?\d[\d.,e+-]*%?( ± [\d.,e+-]+)?( vs .*)?|-)$")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _image_html(img: Image) -> str:
    data = base64.b64encode(img.png).decode("ascii")
    caption = f"<figcaption>{_e(img.caption)}</figcaption>" if img.caption else ""
    return (
        f'<figure><div class="title">{_e(img.title)}</div>'
        f'<img alt="{_e(img.title)}" src="data:image/png;base64,{data}">{caption}</figure>'
    )


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in table.headers)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="num">{_e(c)}</td>' if _NUMBER.match(c) else f"<td>{_e(c)}</td>" for c in row)
        + "</tr>"
        for row in table.rows
    )
    caption = f"<caption>{_e(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section_html(section: Section) -> str:
    parts = [f'<section id="{_e(section.id)}">', f"<h2>{_e(section.title)}</h2>"]
    parts.append(f'<p class="about">{_e(section.about)}</p>')
    figures: list[str] = []

    def flush() -> None:
        if figures:
            parts.append('<div class="figures">' + "".join(figures) + "</div>")
            figures.clear()

    for item in section.items:
        if isinstance(item, Image):
            figures.append(_image_html(item))
            continue
        flush()
        if isinstance(item, Table):
            parts.append(_table_html(item))
        else:
            parts.append(
                f'<p class="{_e(item.kind if item.kind == "warning" else "note")}">{_e(item.text)}</p>'
            )
    flush()
    parts.append("</section>")
    return "\n".join(parts)


def render_html(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page as one HTML document that needs nothing else (no network, no script).

    Args:
        title: Page title.
        subtitle: A line under the title (what was compared, when, by which version).
        sections: The sections, in order; each gets an entry in the table of contents.
    """
    nav = "".join(f'<a href="#{_e(s.id)}">{_e(s.title)}</a>' for s in sections)
    body = "\n".join(_section_html(s) for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"<header><h1>{_e(title)}</h1><p>{_e(subtitle)}</p></header>\n"
        f"<nav>{nav}</nav>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table_md(table: Table) -> str:
    lines = []
    if table.caption:
        lines.append(f"*{table.caption}*\n")
    lines.append("| " + " | ".join(_md_cell(h) for h in table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows)
    return "\n".join(lines)


def render_markdown(title: str, subtitle: str, sections: Sequence[Section], html_name: str) -> str:
    """The report as Markdown: every section's text and tables; figures are named, and live in the HTML.

    Args:
        title: Document title.
        subtitle: A line under the title.
        sections: The sections, in order.
        html_name: File name of the HTML page the figures are in.
    """
    out = [f"# {title}", "", subtitle, ""]
    for s in sections:
        out += [f"## {s.title}", "", s.about, ""]
        n_images = 0
        for item in s.items:
            if isinstance(item, Table):
                out += [_table_md(item), ""]
            elif isinstance(item, Note):
                out += [("> " if item.kind == "warning" else "") + item.text, ""]
            else:
                n_images += 1
        if n_images:
            out += [f"({n_images} figure(s) in [{html_name}]({html_name}#{s.id}))", ""]
    return "\n".join(out).rstrip() + "\n"
