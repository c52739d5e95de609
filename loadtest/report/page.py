"""A page as sections of blocks, rendered to Markdown and to HTML: the one shape every report is written in."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.report.fmt import provenance


@dataclass(frozen=True)
class Text:
    text: str                           # Markdown


@dataclass(frozen=True)
class Table:
    rows: list[list[str]]               # the first row is the header


@dataclass(frozen=True)
class Image:
    name: str                           # a file beside the page


@dataclass(frozen=True)
class Pre:
    text: str                           # Markdown of its own (a run's summary), shown as is in HTML


Block = Text | Table | Image | Pre


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    flag: str = ""                      # shown after the title (e.g. PARTIAL)


def partial_text(results: dict, what: str = "run") -> list[Block]:
    """What a result opens with: the warning when it was cut short, and where its figures come from."""
    cut, source = results.get("partial"), provenance(results)
    blocks: list[Block] = [Text(f"**PARTIAL RESULTS** — the {what} was cut short ({cut}).")] if cut else []
    return blocks + ([Text(source)] if source else [])


def to_markdown(sections: list[Section], title: str) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        if section.title != title or section.flag:  # a one-section page needs no second heading
            lines += [f"## {section.title}{section.flag}", ""]
        for block in section.blocks:
            lines += _md_block(block) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Table):
        head, *rows = block.rows
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |"
                                                                            for r in rows]
    if isinstance(block, Image):
        return [f"![{Path(block.name).stem}]({block.name})"]
    return [block.text]


def to_html(sections: list[Section], title: str) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        flag = f" <strong>{html.escape(section.flag.strip())}</strong>" if section.flag else ""
        body.append(f"<h2>{html.escape(section.title)}{flag}</h2>")
        body += [_html_block(b) for b in section.blocks]
    style = "body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{border:1px solid #ccc;padding:4px}" \
            "table{border-collapse:collapse}img{max-width:100%}"
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>" \
           f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"


def _html_block(block: Block) -> str:
    def cells(row: list[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row) + "</tr>"

    if isinstance(block, Table):
        return "<table>" + cells(block.rows[0], "th") + "".join(cells(r, "td") for r in block.rows[1:]) + "</table>"
    if isinstance(block, Image):
        return f'<img src="{html.escape(block.name)}" alt="{html.escape(Path(block.name).stem)}">'
    if isinstance(block, Pre):
        return f"<pre>{html.escape(block.text)}</pre>"
    return f"<p>{html.escape(block.text)}</p>"


def write_page(results_json: Path, markdown: Callable[[dict], str]) -> Path:
    """A benchmark's own page, as Markdown beside its JSON (x.json -> x.md)."""
    path = results_json.with_suffix(".md")
    path.write_text(markdown(json.loads(results_json.read_text())))
    return path
