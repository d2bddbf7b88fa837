"""The dashboard chart: revenue (bars) and orders (line) per day, as a PNG.

matplotlib is imported inside the function: it costs ~0.5 s and tens of MB, paid only when an
admin asks for the chart. The figure is drawn on the Agg canvas directly (no pyplot), so no
global figure state is shared between calls or threads.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from services.admin.figures import DaySales

_REVENUE_COLOUR = "#4C72B0"
_ORDERS_COLOUR = "#DD8452"


def render_sales_chart(days: Sequence[DaySales], title: str) -> bytes:
    """A PNG of the days' USD revenue and order counts; CPU-bound, run it in a thread."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(9, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    revenue_axis = figure.add_subplot()
    labels = [day.day.strftime("%d %b") for day in days]
    positions = list(range(len(days)))
    revenue_axis.bar(
        positions, [float(day.revenue_usd) for day in days], color=_REVENUE_COLOUR, width=0.7
    )
    revenue_axis.set_ylabel("Revenue, USD", color=_REVENUE_COLOUR)
    revenue_axis.set_ylim(bottom=0)
    orders_axis = revenue_axis.twinx()
    orders_axis.plot(
        positions, [day.orders for day in days], color=_ORDERS_COLOUR, marker="o", markersize=3
    )
    orders_axis.set_ylabel("Orders", color=_ORDERS_COLOUR)
    orders_axis.set_ylim(bottom=0)
    orders_axis.yaxis.set_major_locator(MaxNLocator(integer=True))
    step = max(1, len(days) // 10)
    revenue_axis.set_xticks(positions[::step], labels[::step])
    revenue_axis.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
