"""A panel's rows as a Plotly figure (data and layout, plain JSON) and as table cells: pure."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from markupsafe import Markup, escape

from services.dashboard.queries import Chart, Filters

Rows = list[dict]


def cell(value) -> str:
    """How a value is shown in a table: what the browser test compares with the SQL's own result."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, Decimal)):
        return f"{float(value):.3f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="milliseconds")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def table_body(columns: list[str], rows: Rows, links: dict[str, str], filters: Filters) -> Markup:
    """The rows of a panel's table as HTML, every cell escaped; a linked cell sets its filter.

    Built here rather than cell by cell in the template: a week's tasks per minute are ten
    thousand rows, which the template took the best part of a second to write."""
    if not rows:
        return Markup(f'<tr><td colspan="{len(columns) or 1}">no rows</td></tr>')
    lines = []
    for row in rows:
        cells = []
        for column in columns:
            value = row[column]
            # Only text may hold markup: what `cell` makes of numbers, times and booleans cannot.
            shown = escape(value) if type(value) is str else cell(value)
            if shown and column in links:
                page = "decisions" if links[column] == "task" else "agents"
                address = escape(f"/{page}?{filters.query_string(**{links[column]: cell(value)})}")
                cells.append(f'<td><a href="{address}">{shown}</a></td>')
            else:
                cells.append(f"<td>{shown}</td>")
        lines.append(f"<tr>{''.join(cells)}</tr>")
    return Markup("\n".join(lines))


def plain(value):
    """A value Plotly takes as it is: numbers as numbers, times as ISO text."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def figure(chart: Chart, rows: Rows, marks: Rows = ()) -> dict:
    data = {"line": _lines, "bar": _bars, "heatmap": _heatmap, "band": _band}[chart.kind](chart, rows, marks)
    layout = {
        "margin": {"l": 60, "r": 20, "t": 10, "b": 60},
        "height": 320,
        "showlegend": True,
        "legend": {"orientation": "h"},
        "yaxis": {"title": {"text": chart.y_title}},
        "xaxis": {"automargin": True},
    }
    if chart.kind == "bar":
        layout["barmode"] = "group"
    return {"data": data, "layout": layout}


def _column(rows: Rows, name: str) -> list:
    values = [row[name] for row in rows]
    kinds = {type(v) for v in values} - {type(None)}
    if kinds <= {int, float, str, bool}:  # as they are: no call per value for the common case
        return values
    return [plain(v) for v in values]


def _lines(chart: Chart, rows: Rows, marks: Rows) -> list[dict]:
    x = _column(rows, chart.x)  # once for every trace: a week is ten thousand minutes
    return [{"type": "scatter", "mode": "lines+markers", "name": y, "x": x, "y": _column(rows, y)} for y in chart.y]


def _bars(chart: Chart, rows: Rows, marks: Rows) -> list[dict]:
    x = _column(rows, chart.x)
    return [{"type": "bar", "name": y, "x": x, "y": _column(rows, y)} for y in chart.y]


def _heatmap(chart: Chart, rows: Rows, marks: Rows) -> list[dict]:
    xs = sorted({row[chart.x] for row in rows})
    ys = sorted({row[chart.series] for row in rows})
    cells = {(row[chart.series], row[chart.x]): plain(row[chart.z]) for row in rows}
    return [
        {
            "type": "heatmap",
            "name": chart.z,
            "x": xs,
            "y": ys,
            "zmin": 0,
            "zmax": 1,
            "colorscale": "RdYlGn",
            "z": [[cells.get((y, x)) for x in xs] for y in ys],
            "hoverongaps": False,
        }
    ]


def _band(chart: Chart, rows: Rows, marks: Rows) -> list[dict]:
    """Per series: the lower edge, the upper edge filled down to it, the line itself; then the marks."""
    traces = []
    for name in sorted({row[chart.series] for row in rows}):
        mine = [row for row in rows if row[chart.series] == name]
        x = _column(mine, chart.x)
        traces += [
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": _column(mine, chart.low),
                "line": {"width": 0},
                "name": f"{name} band",
                "legendgroup": name,
                "showlegend": False,
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "x": x,
                "y": _column(mine, chart.high),
                "line": {"width": 0},
                "fill": "tonexty",
                "fillcolor": "rgba(100, 120, 200, 0.15)",
                "name": f"{name} band",
                "legendgroup": name,
                "showlegend": False,
                "hoverinfo": "skip",
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": x,
                "y": _column(mine, chart.y[0]),
                "name": name,
                "legendgroup": name,
            },
        ]
    if marks:
        traces.append(
            {
                "type": "scatter",
                "mode": "markers+text",
                "name": "detected shift",
                "x": [plain(m["detected_at"]) for m in marks],
                "y": [plain(m["after"]) for m in marks],
                "text": [f"{m['capability']} {m['direction']}" for m in marks],
                "textposition": "top center",
                "marker": {"symbol": "star", "size": 14, "color": "black"},
            }
        )
    return traces
