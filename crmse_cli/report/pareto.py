"""The trade-off figure: stability against force error, one point per method and seed.

Each point is a model sampled at the study's temperature: on one axis the share of replicas that
left the basin in the sample, on the other its test force MAE relative to the MSE parent of the
same seed. The target region (at most ``budget_left`` of the replicas out, force cost within
``budget_force``) is shaded, so a method that reaches it, or does not, is read at a glance.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import plotly.graph_objects as go

from crmse_cli.report.plotting import color, layout

_SYMBOLS = ("circle", "diamond", "square", "triangle-up", "x")


@dataclass(frozen=True)
class TradeoffPoint:
    """One sampled model: its method, seed, force cost and how many replicas left."""

    method: str
    seed: int
    force_mae_change: float  # relative to the parent of the same seed: 0.10 = +10%
    n_left: int
    n_replicas: int
    parents: str = ""  # which set of parents (a study), drawn as the marker's shape

    @property
    def share_left(self) -> float:
        """Replicas that left the basin, as a share of those sampled."""
        return self.n_left / self.n_replicas


def _hover(p: TradeoffPoint, seeds: bool) -> str:
    return (f"seed {p.seed}: " if seeds else "") + f"{p.n_left}/{p.n_replicas} out"


def tradeoff_figure(
    points: list[TradeoffPoint],
    *,
    budget_force: float = 0.10,
    budget_left: float = 2 / 64,
    seeds: bool = True,
) -> go.Figure:
    """Stability (share of replicas out) against force MAE change, one trace per method.

    ``seeds=False`` (one model per method, as in a run's report) leaves the seed out of the hover.
    """
    fig = go.Figure()
    top = max([p.share_left for p in points] + [0.3])
    fig.add_shape(  # x is the ratio to the parent's force MAE, on a log axis (the grid spans 20x)
        type="rect",
        x0=0.5,
        x1=1 + budget_force,
        y0=-0.01,
        y1=budget_left,
        fillcolor="rgba(46,160,67,0.15)",
        line=dict(width=0),
        layer="below",
    )
    fig.add_annotation(
        x=math.log10(1 + budget_force),
        y=budget_left,
        text="target",
        showarrow=False,
        xanchor="right",
        yanchor="bottom",
        font=dict(color="rgb(46,120,67)"),
    )
    by_method: dict[tuple[str, str], list[TradeoffPoint]] = defaultdict(list)
    for p in points:
        by_method[(p.method, p.parents)].append(p)
    methods = list(dict.fromkeys(p.method for p in points))  # a colour per method
    studies = list(dict.fromkeys(p.parents for p in points))  # a marker per set of parents
    for (method, parents), group in by_method.items():
        name = f"{method} ({parents})" if parents else method
        fig.add_trace(
            go.Scatter(
                x=[1 + p.force_mae_change for p in group],
                y=[p.share_left for p in group],
                mode="markers",
                name=name,
                marker=dict(
                    size=11,
                    color=color(methods.index(method)),
                    symbol=_SYMBOLS[studies.index(parents) % len(_SYMBOLS)],
                    line=dict(width=1, color="#222"),
                ),
                text=[_hover(p, seeds) for p in group],
                hovertemplate="%{text}<br>force MAE x%{x:.3f}<extra>" + name + "</extra>",
            )
        )
    ratios = [1 + p.force_mae_change for p in points] + [1 + budget_force]
    fig.update_xaxes(
        title="test force MAE / the MSE parent's (log scale)",
        type="log",
        range=[math.log10(min(ratios + [1.0]) * 0.95), math.log10(max(ratios) * 1.1)],
    )
    fig.update_yaxes(title="replicas that left the basin (share)", range=[-0.01, top + 0.02])
    return layout(fig, height=520, title="Stability against force accuracy")
