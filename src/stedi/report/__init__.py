"""`stedi report OUT.html`: one self-contained page per lake, for a data engineer and a privacy officer.

The page holds its data and plotly.js inline, so it opens offline, from a mail attachment too. It
is rendered by Jinja2 with autoescaping on: every value from the lake is text on the page (a
customer named `<script>` shows as that), and the charts' data travels as JSON that `tojson`
escapes for a <script> element. The facts come from `report.facts`, the pictures from
`report.charts`, the lineage graph is drawn here as SVG from the models' `reads`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stedi.api import Lakehouse
from stedi.errors import UserError
from stedi.report.charts import all_charts
from stedi.report.facts import Facts, gather

NODE_WIDTH, NODE_HEIGHT, COLUMN_GAP, ROW_GAP = 190, 32, 40, 36


@dataclass(frozen=True)
class Report:
    """What `stedi report` wrote: the page, its size, and what it shows."""

    path: str
    bytes: int
    tables: int
    charts: int
    failed_checks: int


def lineage_svg(lineage: list[tuple[str, str, list[str]]]) -> dict:
    """Boxes and arrows of the model graph, top to bottom in rows by depth (landing tables first)."""
    depth: dict[str, int] = {}
    zones: dict[str, str] = {}
    for name, zone, reads in lineage:  # in run order: every table read is placed already
        for read in reads:
            depth.setdefault(read, 0)
            zones.setdefault(read, "landing")
        depth[name] = 1 + max((depth[read] for read in reads), default=0)
        zones[name] = zone
    levels: dict[int, list[str]] = {}
    for name in depth:
        levels.setdefault(depth[name], []).append(name)
    place = {}
    for level, names in levels.items():
        for column, name in enumerate(sorted(names)):
            place[name] = (column * (NODE_WIDTH + COLUMN_GAP), level * (NODE_HEIGHT + ROW_GAP))
    nodes = [{"name": name, "zone": zones[name], "x": x, "y": y} for name, (x, y) in place.items()]
    edges = []
    for name, _, reads in lineage:
        x2, y2 = place[name]
        for read in reads:
            x1, y1 = place[read]
            start, end = (x1 + NODE_WIDTH / 2, y1 + NODE_HEIGHT), (x2 + NODE_WIDTH / 2, y2)
            middle = (start[1] + end[1]) / 2
            edges.append(f"M{start[0]},{start[1]} C{start[0]},{middle} {end[0]},{middle} {end[0]},{end[1]}")
    width = max(x for x, _ in place.values()) + NODE_WIDTH if place else 0
    height = max(y for _, y in place.values()) + NODE_HEIGHT if place else 0
    return {"nodes": nodes, "edges": edges, "width": width, "height": height, "node_width": NODE_WIDTH, "node_height": NODE_HEIGHT}


def render(facts: Facts) -> tuple[str, int]:
    """The page's HTML, and how many charts it draws."""
    from jinja2 import Environment, PackageLoader
    from plotly.offline import get_plotlyjs

    environment = Environment(loader=PackageLoader("stedi.report", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    charts = all_charts(facts)
    page = environment.get_template("report.html.j2").render(facts=facts, charts=charts, lineage=lineage_svg(facts.lineage), plotly_js=get_plotlyjs())
    return page, len(charts)


def write_report(location: str | None, out: str) -> Report:
    """Write the report of the lake at `location` to the file `out` (replaced whole, or not at all)."""
    lake = Lakehouse(location)
    path = Path(out)
    if path.is_dir():
        raise UserError(f"{out} is a folder: give the report's file name, such as {path / 'report.html'}")
    facts = gather(lake)
    page, charts = render(facts)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        os.replace(partial, path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise UserError(f"cannot write the report to {out}: {error.strerror or error}") from None
    failed = sum(1 for check in facts.checks if not check.passed)
    return Report(str(path), path.stat().st_size, len(facts.tables), charts, failed)
