"""The operator's services, built once by the app and handed to the admin handlers as one."""

from __future__ import annotations

from dataclasses import dataclass

from services.admin.broadcast import Broadcasts, BroadcastSender
from services.admin.daily_report import DailyReport
from services.admin.dashboard import Dashboard
from services.admin.lookup import OrderLookup
from services.admin.order_actions import OrderActions
from services.admin.supplier import SupplierService
from services.admin.tickets import SupportTickets


@dataclass(frozen=True, slots=True)
class AdminServices:
    dashboard: Dashboard
    supplier: SupplierService
    lookup: OrderLookup
    actions: OrderActions
    tickets: SupportTickets
    broadcasts: Broadcasts
    sender: BroadcastSender
    # None while DAILY_REPORT_HOUR is empty.
    daily_report: DailyReport | None
