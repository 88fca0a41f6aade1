"""The static HTML report: one self-contained page, relative links, no network.

Everything the page needs is inline (CSS) or beside it (``plots/``, ``images/``), so it opens
from disk, from a CI artifact or from an S3 download alike. A small inline script counts images
that failed to load and writes the count into the page (``#selfcheck``) so that a headless
browser test, or a reader, sees a broken link at once.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from splatbench.report.tables import format_value

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222;
       padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.mean td { font-weight: bold; background: #fafafa; }
.note { color: #555; font-size: 0.85em; } .warn { color: #a40; }
.bad { color: #a40; } .good { color: #160; }
figure { display: inline-block; margin: 0.4em; } figcaption { font-size: 0.8em; color: #444; }
img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ddd; }
#selfcheck { font-size: 0.75em; color: #777; }
"""

# Runs after every image has loaded or failed; writes the counts into #selfcheck.
SELF_CHECK_JS = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var broken = imgs.filter(function (im) { return !(im.complete && im.naturalWidth > 0); });
  var el = document.getElementById('selfcheck');
  el.setAttribute('data-images', String(imgs.length));
  el.setAttribute('data-broken', String(broken.length));
  el.textContent = 'page check: ' + imgs.length + ' images, ' + broken.length + ' broken' +
    (broken.length ? ' (' + broken.map(function (im) { return im.getAttribute('src'); })
                              .join(', ') + ')' : '');
});
"""


@dataclass
class Figure:
    """An image on the page: ``src`` relative to the page, and its caption."""

    src: str
    caption: str


@dataclass
class Section:
    """A titled block: paragraphs (HTML-escaped), an optional table, figures."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    columns: Mapping[str, tuple[str, str]] | None = None
    figures: list[Figure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # An embedded page (the 3D viewer), loaded lazily, and links shown under it.
    iframe: str | None = None
    links: list[tuple[str, str]] = field(default_factory=list)  # (href, text)


def html_table(df: pd.DataFrame, columns: Mapping[str, tuple[str, str]]) -> str:
    """An HTML table of ``df``'s ``columns``; rows whose scene is ``mean`` are emphasised."""
    names = [c for c in columns if c in df.columns]
    head = "".join(f"<th>{html.escape(columns[c][0])}</th>" for c in names)
    body = []
    for _, row in df.iterrows():
        cls = ' class="mean"' if str(row.get("scene", "")) in ("mean", "all scenes") else ""
        cells = []
        for c in names:
            kind = columns[c][1]
            text = html.escape(format_value(row[c], kind))
            td = '<td class="num">' if kind != "text" else "<td>"
            cells.append(f"{td}{text}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_page(title: str, intro: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole page as a string."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No network: forbid anything but same-origin files and the inline style/script.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "frame-src 'self' file:\">",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [f'<p class="note">{html.escape(p)}</p>' for p in intro]
    for s in sections:
        parts.append(f"<section><h2>{html.escape(s.title)}</h2>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        if s.warnings:
            items = "".join(f'<li class="warn">{html.escape(w)}</li>' for w in s.warnings)
            parts.append(f"<ul>{items}</ul>")
        if s.table is not None and s.columns is not None and not s.table.empty:
            parts.append(html_table(s.table, s.columns))
        for f in s.figures:
            parts.append(
                f'<figure><img src="{html.escape(f.src, quote=True)}" '
                f'alt="{html.escape(f.caption, quote=True)}" loading="eager">'
                f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
            )
        if s.iframe:
            parts.append(
                f'<iframe src="{html.escape(s.iframe, quote=True)}" loading="lazy" '
                'title="3D viewer" style="width:100%;height:560px;border:1px solid #ccc">'
                "</iframe>"
            )
        if s.links:
            items = " | ".join(
                f'<a href="{html.escape(href, quote=True)}">{html.escape(text)}</a>'
                for href, text in s.links
            )
            parts.append(f'<p class="note">{items}</p>')
        parts.append("</section>")
    parts.append('<p id="selfcheck" data-images="" data-broken="">page check: not run</p>')
    parts.append(f"<script>{SELF_CHECK_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def figure_caption(item: Mapping[str, Any]) -> str:
    """Caption of a comparison strip from its ``comparisons.json`` entry."""
    bits = [f"{item.get('scene', '')} {item.get('model', '')} {item.get('view', '')}".strip()]
    for key, fmt in (("psnr", ".2f"), ("ssim", ".4f"), ("lpips", ".4f")):
        value = item.get(key)
        if isinstance(value, (int, float)):
            bits.append(f"{key.upper()} {value:{fmt}}")
    return " | ".join(bits) + " (ground truth | render | error)"
