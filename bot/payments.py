"""Payments at the edge: Telegram's Stars ledger read through aiogram, the reconciler built on
it, and what happens when a payment update fails."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.enums import TransactionPartnerType
from aiogram.exceptions import TelegramAPIError, TelegramRetryAfter
from aiogram.types import StarTransaction, TransactionPartnerUser, Update

from bot.deps import AppDeps
from bot.messenger import AiogramMessenger
from services.admin_alerts import AdminAlerts
from services.messenger import MessengerError, RetryLaterError
from services.payment_failures import report_unstored_payment
from services.payment_reconciler import LedgerEntry, PaymentReconciler

log = logging.getLogger(__name__)

INVOICE_PAYMENT = "invoice_payment"


class AiogramStarLedger:
    """services.payment_reconciler.StarLedger over the Bot API's getStarTransactions."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def transactions(self, offset: int, limit: int) -> list[LedgerEntry]:
        try:
            page = await self._bot.get_star_transactions(offset=offset, limit=limit)
        except TelegramRetryAfter as exc:
            raise RetryLaterError(float(exc.retry_after)) from exc
        except TelegramAPIError as exc:
            raise MessengerError(exc.message) from exc
        return [_entry(transaction) for transaction in page.transactions]


def _entry(transaction: StarTransaction) -> LedgerEntry:
    partner = transaction.source or transaction.receiver
    user = partner if isinstance(partner, TransactionPartnerUser) else None
    invoice = user is not None and user.transaction_type == INVOICE_PAYMENT
    return LedgerEntry(
        id=transaction.id,
        amount=transaction.amount,
        date=transaction.date,
        incoming=transaction.source is not None,
        partner=TransactionPartnerType(partner.type).value if partner is not None else "other",
        user_id=user.user.id if user is not None else None,
        invoice_payload=user.invoice_payload if user is not None and invoice else None,
    )


def create_payment_reconciler(deps: AppDeps, bot: Bot) -> PaymentReconciler:
    """The reconciler of the Stars ledger; run() it (on one replica at a time)."""
    return PaymentReconciler(
        deps.session_factory,
        AiogramStarLedger(bot),
        deps.orders,
        deps.alerts,
        AiogramMessenger(bot),
        interval_seconds=deps.settings.payment_reconcile_seconds,
        fulfilment_wake=deps.fulfilment_wake,
    )


def is_payment(update: Update) -> bool:
    """A pre-checkout query or a successful payment: never acknowledged before it is handled."""
    message = update.message
    return update.pre_checkout_query is not None or (
        message is not None and message.successful_payment is not None
    )


async def payment_update_failed(update: Update, bot: Bot, alerts: AdminAlerts) -> None:
    """Report a payment update that failed; the caller re-raises (a webhook answers 5xx, so
    Telegram delivers it again)."""
    message = update.message
    payment = message.successful_payment if message is not None else None
    if payment is None or message is None:
        return  # a pre-checkout left unanswered: Telegram takes no money
    try:
        await report_unstored_payment(
            alerts,
            AiogramMessenger(bot),
            user_id=message.from_user.id if message.from_user is not None else message.chat.id,
            payload=payment.invoice_payload,
            amount=payment.total_amount,
            currency=payment.currency,
            charge_id=payment.telegram_payment_charge_id,
            provider_charge_id=payment.provider_payment_charge_id,
        )
    except Exception:
        # Never hide the failure being reported (the alert may need the same database).
        log.exception("could not report the failed payment update %s", update.update_id)
