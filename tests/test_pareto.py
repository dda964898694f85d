"""The trade-off figure (issue 29): one point per model and seed, the target region shaded."""

from __future__ import annotations

from crmse_cli.report.pareto import TradeoffPoint, tradeoff_figure


def test_points_land_where_their_numbers_say_and_the_target_is_shaded() -> None:
    pts = [
        TradeoffPoint("CRMSE", 0, 0.231, 0, 64, "study A"),
        TradeoffPoint("CRMSE", 1, 0.20, 3, 64, "study A"),
        TradeoffPoint("MSE", 0, 0.0, 13, 64, "study A"),
        TradeoffPoint("CRMSE", 0, 0.19, 11, 64, "study B"),
    ]
    fig = tradeoff_figure(pts, budget_force=0.10, budget_left=2 / 64)
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"CRMSE (study A)", "MSE (study A)", "CRMSE (study B)"}
    crmse = traces["CRMSE (study A)"]
    assert list(crmse.x) == [1.231, 1.20] and list(crmse.y) == [0.0, 3 / 64]
    assert crmse.marker.color == traces["CRMSE (study B)"].marker.color  # colour: the method
    assert crmse.marker.symbol != traces["CRMSE (study B)"].marker.symbol  # shape: the parents
    (target,) = fig.layout.shapes
    assert (target.x1, target.y1) == (1.10, 2 / 64)
    assert fig.layout.xaxis.type == "log"
