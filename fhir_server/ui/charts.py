"""Charts of the report pages: SVG drawn on the server by pygal, shown as `<img>`.

Why an image in a `data:` URL: the pages' Content-Security-Policy allows no
inline style, and pygal's SVG styles itself with a `<style>` element; an SVG
shown as an image is a document of its own, which the page's policy does not
reach and in which no script ever runs (`img-src 'self' data:` lets it in). The
chart comes with the page's own HTML, drawn from the same MeasureReport as the
table beside it, so the two cannot disagree (a separate image request would
evaluate the measure again, perhaps over newer data) and a page costs one
`$evaluate-measure` call. pygal's script elements (its tooltips, and the
address of a script on a CDN, which `js=[]` removes) are taken out all the same:
the file must be inert however it is opened.

Readable without colour: every bar is labelled with its number (and with its
series' name when several series share the chart), categories are named on
the axis, and the numbers are in the table beside the chart anyway. A value the
report withheld is drawn as no bar, labelled "<11" as in the table.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pygal
from pygal.style import Style

# The natural size: 480 px wide, drawn larger on a wide screen and smaller on a phone,
# where its text stays legible (the table beside it has every number anyway).
_BAR_HEIGHT = 24  # px per bar
_WIDTH = 480
_LABEL_CHARS = 22
# Okabe-Ito: told apart by the colour-blind too (and never the only difference).
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1d1d1d",
    foreground_strong="#0b0c0c",
    foreground_subtle="#505a5f",
    colors=_COLOURS,
    opacity="1",
    opacity_hover="1",
    font_family="Arial, Helvetica, sans-serif",
    label_font_size=14,
    major_label_font_size=14,
    value_font_size=14,
    title_font_size=16,
    guide_stroke_color="#b1b4b6",
)


@dataclass(frozen=True)
class Series:
    """One set of bars: a value per category (None: none drawn) and the text that labels
    each bar (the number as the table beside the chart shows it, "<11" when withheld)."""

    name: str
    values: Sequence[float | None]
    texts: Sequence[str]


def bar_chart(
    categories: Sequence[str], series: Sequence[Series], axis: Callable[[float], str]
) -> str:
    """Horizontal bars, one per category and series, each labelled with its text (after
    the series' name when there are several), as an inert SVG document; `axis` writes the
    scale's numbers."""
    named = len(series) > 1
    chart = pygal.HorizontalBar(
        style=_STYLE,
        js=[],
        css=["file://style.css", "file://graph.css"],
        disable_xml_declaration=True,
        show_legend=False,
        print_values=True,
        print_values_position="top",
        width=_WIDTH,
        height=max(160, 90 + _BAR_HEIGHT * len(categories) * max(len(series), 1)),
        margin=12,
        spacing=8,
        max_scale=5,  # few numbers on the scale: they stay apart at 480 px
        show_x_guides=True,
        show_y_guides=False,
        value_formatter=axis,
        range=(0, _headroom(series)),
    )
    chart.x_labels = [_short(c) for c in reversed(categories)]  # the first category on top
    for one in series:
        prefix = f"{one.name}: " if named else ""
        values = []
        for value, text in reversed(list(zip(one.values, one.texts, strict=True))):
            values.append({"value": value or 0, "formatter": _constant(prefix + text)})
        chart.add(one.name, values)
    return _inert(chart.render_tree())


def _short(label: str) -> str:
    """A category's name cut to fit the axis (the table beside the chart has it whole)."""
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1].rstrip() + "\u2026"


def _headroom(series: Sequence[Series]) -> float:
    """The axis' end: past the longest bar, so its label fits after it."""
    top = max((v for one in series for v in one.values if v is not None), default=0.0)
    return top * 1.4 if top > 0 else 10.0


def _constant(text: str) -> Callable[[float], str]:
    return lambda _value: text


def _inert(tree: ET.Element) -> str:
    """The SVG without its scripts, its (scripted) tooltip layer and its comments, each
    bar's label just after the bar's end (pygal centres it on the end)."""
    for parent in tree.iter():
        if parent.tag == "text" and parent.get("class") == "value":
            parent.set("text-anchor", "start")
            parent.set("x", f"{float(parent.get('x', '0')) + 6:.1f}")
        for child in list(parent):
            scripted = child.tag == "script" or "tooltip-overlay" in child.get("class", "")
            if callable(child.tag) or scripted:  # a comment
                parent.remove(child)
    return ET.tostring(tree, encoding="unicode")


def data_url(svg: str) -> str:
    """The SVG as a `data:` URL for an `<img src>`."""
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")
