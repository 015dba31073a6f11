"""Plotly figures as plain dicts (``{"data": [...], "layout": {...}}``), drawn in the browser
by the bundled plotly.js. Only the trace types of its basic bundle are used (scatter, bar).

Texts that reach a figure (hover labels, legend names) are HTML-escaped here: plotly.js
renders a small subset of HTML in labels, so a stored text must not be able to add markup.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

Series = dict[str, tuple[list[float], list[float | None]]]
_MARGIN = {"l": 50, "r": 20, "t": 40, "b": 40}


def label(text: Any, limit: int = 160) -> str:
    """``text`` shortened to ``limit`` characters and HTML-escaped, for a plotly label."""
    value = str(text)
    if len(value) > limit:
        value = value[:limit - 1] + "…"
    return html.escape(value)


def iso(ts: float) -> str:
    """Epoch seconds as an ISO time plotly reads as a date axis."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def lines(title: str, series: Series, y_title: str = "", y_range: Sequence[float] | None = None,
          threshold: float | None = None, height: int = 320) -> dict[str, Any]:
    """Line chart of named series over time: ``{name: (epoch seconds, values)}``; a dashed
    horizontal line at ``threshold``."""
    data = [
        {"type": "scatter", "mode": "lines+markers", "name": label(name, 60),
         "x": [iso(t) for t in xs], "y": ys}
        for name, (xs, ys) in series.items()
    ]
    layout: dict[str, Any] = {
        "title": {"text": label(title, 100)}, "height": height, "margin": _MARGIN,
        "xaxis": {"type": "date"}, "yaxis": {"title": {"text": label(y_title, 40)}},
        "legend": {"orientation": "h", "y": -0.2},
    }
    if y_range is not None:
        layout["yaxis"]["range"] = list(y_range)
    if threshold is not None:
        layout["shapes"] = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1,
                             "y0": threshold, "y1": threshold,
                             "line": {"dash": "dash", "color": "#c62828", "width": 1}}]
    return {"data": data, "layout": layout}


def bars(title: str, names: Sequence[str], values: Sequence[float], y_title: str = "",
         height: int = 280) -> dict[str, Any]:
    """A bar chart of named values."""
    return {
        "data": [{"type": "bar", "x": [label(n, 40) for n in names], "y": list(values)}],
        "layout": {"title": {"text": label(title, 100)}, "height": height, "margin": _MARGIN,
                   "yaxis": {"title": {"text": label(y_title, 40)}}},
    }


def scatter(title: str, traces: list[dict[str, Any]], height: int = 560) -> dict[str, Any]:
    """A 2-D scatter map of points: each trace ``{"name", "x", "y", "text"}`` plus optional
    ``"color"`` (numbers, drawn with a colour scale) or ``"symbol"``."""
    data = []
    for trace in traces:
        marker: dict[str, Any] = {"size": trace.get("size", 5), "opacity": 0.75}
        if "color" in trace:
            marker.update(color=trace["color"], colorscale="Viridis", showscale=True,
                          colorbar={"title": {"text": label(trace.get("color_title", ""), 30)}})
        if "symbol" in trace:
            marker["symbol"] = trace["symbol"]
        data.append({"type": "scatter", "mode": "markers", "name": label(trace["name"], 60),
                     "x": trace["x"], "y": trace["y"], "text": trace["text"],
                     "hoverinfo": "text", "marker": marker})
    layout = {"title": {"text": label(title, 100)}, "height": height, "margin": _MARGIN,
              "hovermode": "closest", "legend": {"orientation": "h", "y": -0.08},
              "xaxis": {"zeroline": False}, "yaxis": {"zeroline": False}}
    return {"data": data, "layout": layout}
