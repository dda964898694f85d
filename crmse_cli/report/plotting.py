"""Shared look of the report's Plotly figures: colours, layout and small array helpers."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

if TYPE_CHECKING:
    from crmse_cli.report.collect import ReportData, RunData

REF_COLOR = "#444444"
PALETTE = qualitative.Plotly


def color(i: int) -> str:
    """The ``i``-th colour of the palette (runs are coloured in report order)."""
    return str(PALETTE[i % len(PALETTE)])


def run_color(report: ReportData, run: RunData) -> str:
    """The colour of ``run`` in every figure."""
    return color(report.runs.index(run))


@dataclass(frozen=True)
class FigureSpec:
    """A figure with its HTML id, section title and a caption saying how to read it."""

    id: str
    title: str
    caption: str
    figure: go.Figure


def layout(fig: go.Figure, *, height: int, **kw: object) -> go.Figure:
    """Apply the report's template, margins and legend (on the right) to ``fig``; return it."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin=dict(l=60, r=160, t=50, b=50),
        # On the right, so it never covers the subplot titles.
        legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.01),
        **kw,
    )
    return fig


def gaps(y: np.ndarray) -> list[float | None]:
    """Values with non-finite entries as None (a gap in the line)."""
    return [float(v) if math.isfinite(float(v)) else None for v in np.asarray(y, dtype=np.float64)]


def step_line(edges: np.ndarray, density: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A histogram as a step line: x = edges, y = density repeated for the last edge."""
    return np.asarray(edges), np.append(density, density[-1] if len(density) else 0.0)


def bin_centers(edges: np.ndarray) -> np.ndarray:
    """Bin centres of ``edges``."""
    e = np.asarray(edges, dtype=np.float64)
    out: np.ndarray = 0.5 * (e[:-1] + e[1:])
    return out
