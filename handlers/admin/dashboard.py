"""/admin: sales for today, 7 and 30 days, the supplier balance, the orders that need an
operator (each a button to its story), and the chart of the last 30 days as a photo."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup, Message

from handlers.callbacks import AdminOrderCallback
from handlers.render import Screen, button
from services.admin.dashboard import AttentionItem, DashboardFigures
from services.admin.report_text import period_lines, reason_text, supplier_lines
from services.admin.services import AdminServices
from services.admin.supplier import SupplierStatus

PERIODS = (("Today", "since 00:00 UTC"), ("Last 7 days", ""), ("Last 30 days", ""))


def dashboard_screen(
    figures: DashboardFigures, supplier: SupplierStatus, attention: Sequence[AttentionItem]
) -> Screen:
    lines = ["📊 <b>Dashboard</b>"]
    periods = (figures.today, figures.week, figures.month)
    for (title, note), period in zip(PERIODS, periods, strict=True):
        lines += ["", f"<b>{title}</b>" + (f" ({note})" if note else ""), *period_lines(period)]
    lines += ["", "<b>Supplier</b>", *supplier_lines(supplier), ""]
    if attention:
        lines.append(f"⚠️ <b>Needs attention: {len(attention)}</b> (tap one for its story)")
    else:
        lines.append("✅ Nothing needs attention.")
    rows = [
        [
            button(
                f"{item.public_id} · {reason_text(item.reason)}",
                AdminOrderCallback(step="show", order=item.public_id),
            )
        ]
        for item in attention
    ]
    return Screen("\n".join(lines), InlineKeyboardMarkup(inline_keyboard=rows))


async def on_admin(message: Message, admin: AdminServices, state: FSMContext) -> None:
    await state.clear()
    board = admin.dashboard
    figures, attention = await board.periods(), await board.attention()
    screen = dashboard_screen(figures, await admin.supplier.status(), attention)
    await message.answer(screen.text, reply_markup=screen.markup)
    chart = BufferedInputFile(await board.chart_png(), filename="sales-30-days.png")
    await message.answer_photo(chart, caption="Revenue (bars, USD) and orders (line) per day")


def create_router() -> Router:
    router = Router(name="admin-dashboard")
    router.message.register(on_admin, Command("admin"))
    return router
