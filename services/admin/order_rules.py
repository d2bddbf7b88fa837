"""When an admin's action fits an order, and the reason when it does not.

The money rules of the automatic path hold here too: money taken ends as a delivered eSIM or
a refund, never both, and never two refunds. An order a worker holds (its lease runs) is left
alone until the worker lets go.
"""

from __future__ import annotations

import enum
from datetime import datetime

from db.models import Order, OrderStatus
from services.orders import STRAY, TOPUP

# What a Refund of a delivered order whose plan is unused and known to be its own does first.
TAKEN_BACK = (
    "The plan is taken back to your eSIM Go balance; the eSIM stops working for this plan."
)


class OrderAction(enum.StrEnum):
    RETRY = "retry"  # failed (or refund due) → paid: the worker fulfils it again
    REFUND = "refund"  # Stars: refundStarPayment; fiat: the operator paid back by hand
    RESEND = "resend"  # send the eSIM to the buyer again
    RESOLVE = "resolve"  # nothing more to do: off the attention list


def leased(order: Order, now: datetime) -> bool:
    """A worker (or another admin's action) holds the order right now."""
    return order.lease_until is not None and order.lease_until > now


def when(moment: datetime | None) -> str:
    return f" on {moment:%Y-%m-%d %H:%M} UTC" if moment is not None else ""


def _not_paid(order: Order) -> str | None:
    if order.status == OrderStatus.AWAITING_PAYMENT.value:
        return "Not paid yet: there is nothing to act on."
    if order.status == OrderStatus.CANCELLED.value:
        return "Cancelled before payment: there is nothing to act on."
    return None


def _retry_refusal(order: Order) -> str | None:
    status = order.status
    if status == OrderStatus.REFUNDED.value:
        return f"Already refunded{when(order.refunded_at)}: it must not be delivered now."
    if status == OrderStatus.DELIVERED.value:
        return "Already delivered: the eSIM is the buyer's. Use Resend to send it again."
    if status in (OrderStatus.PAID.value, OrderStatus.FULFILLING.value):
        return "Already waiting for fulfilment: nothing to retry."
    if (order.failure_reason or "").startswith(STRAY):
        return "This payment was for an order that is no longer open: refund it."
    if order.esimgo_order_reference:
        return (
            f"eSIM Go already has an order for it ({order.esimgo_order_reference}) that did "
            "not reach the buyer: check the eSIM Go account, and refund it."
        )
    return None


def _refund_refusal(order: Order) -> str | None:
    status = order.status
    if status == OrderStatus.REFUNDED.value:
        return f"Already refunded{when(order.refunded_at)}."
    if status == OrderStatus.FULFILLING.value:
        return (
            "eSIM Go is being asked for it right now: wait until it is delivered or fails, "
            "so that it is never both delivered and refunded."
        )
    if order.price_currency == "XTR" and not order.telegram_payment_charge_id:
        return "No Telegram charge is recorded for it: there is nothing to refund."
    return None


def _resend_refusal(order: Order) -> str | None:
    if order.status == OrderStatus.REFUNDED.value:
        return "Refunded: the eSIM must not be handed over."
    if order.status != OrderStatus.DELIVERED.value:
        return f"Not delivered ({order.status}): there is no eSIM to send."
    if order.delivered_at is None and order.next_attempt_at is not None:
        return "A delivery is already under way."
    if order.kind != TOPUP and not order.qr_code:
        return "No eSIM details are stored for it."
    return None


def _resolve_refusal(order: Order, resolved: bool) -> str | None:
    if resolved:
        return "Already marked resolved."
    if order.status in (OrderStatus.PAID.value, OrderStatus.FULFILLING.value):
        return "Still being fulfilled: wait for it, or Refund it once it fails."
    if order.status in (OrderStatus.FAILED.value, OrderStatus.REFUND_DUE.value):
        return "Paid and not delivered: Retry or Refund it; the money must not be left."
    return None


def refusal(
    action: OrderAction, order: Order, *, now: datetime, resolved: bool = False
) -> str | None:
    """Why `action` does not fit `order` now; None when it does."""
    if (reason := _not_paid(order)) is not None:
        return reason
    if leased(order, now):
        return "A worker is acting on it right now: look again in a minute."
    if action is OrderAction.RETRY:
        return _retry_refusal(order)
    if action is OrderAction.REFUND:
        return _refund_refusal(order)
    if action is OrderAction.RESEND:
        return _resend_refusal(order)
    return _resolve_refusal(order, resolved)


def lease_guard(order: Order) -> dict[str, object]:
    """The guard that the order is as read and nobody holds it: a lease that ran out is
    taken over by comparing its owner, as the worker does."""
    return {"status": order.status, "lease_owner": order.lease_owner}
