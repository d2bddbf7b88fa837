"""The stand-in keeps its account in memory; what the bot sold before a restart is put back from
the bot's own database, so the eSIMs of an earlier demo are still found (by the status poll, by
/myesims, by /sandbox) with their plans as last known."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import Esim, EsimBundle, Order, OrderStatus
from services.esimgo.standin import EsimGoStandIn

log = logging.getLogger(__name__)


def _ms(moment: datetime | None) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


async def restore_account(
    standin: EsimGoStandIn, session_factory: async_sessionmaker[AsyncSession]
) -> int:
    """Put the database's eSIMs and their delivered plans on the stand-in; returns how many."""
    try:
        async with session_factory() as session:
            esims = (await session.scalars(select(Esim).where(Esim.deleted_at.is_(None)))).all()
            delivered = (
                await session.scalars(
                    select(Order)
                    .where(Order.status == OrderStatus.DELIVERED.value, Order.iccid.is_not(None))
                    .order_by(Order.id)
                )
            ).all()
            rows = {
                (b.iccid, b.assignment_key): b for b in await session.scalars(select(EsimBundle))
            }
    except SQLAlchemyError as exc:
        log.warning("sandbox: the eSIMs sold before could not be read back: %s", exc)
        return 0
    for esim in esims:
        standin.add_esim(
            esim.iccid,
            matchingId=esim.matching_id or "",
            smdpAddress=esim.smdp_address or standin.smdp_address,
            profileStatus=esim.profile_status or "Released",
            firstInstalledDateTime=_ms(esim.first_installed_at),
        )
    for order in delivered:
        if order.iccid in standin.esims:
            _restore_plan(standin, order, rows)
    if esims:
        log.info("sandbox: %d eSIM(s) sold before are back on the stand-in", len(esims))
    return len(esims)


def _restore_plan(
    standin: EsimGoStandIn, order: Order, rows: dict[tuple[str, str], EsimBundle]
) -> None:
    """The order's bundle on its eSIM, under the same reference, in the state last stored."""
    assert order.iccid is not None
    assignment = standin.assign_bundle(
        order.iccid, order.bundle_name, order.esimgo_order_reference or ""
    )
    row = rows.get((order.iccid, assignment["assignmentReference"]))
    if row is None:
        return
    assignment["bundleState"] = row.state
    if row.remaining_bytes is not None:
        assignment["remainingQuantity"] = row.remaining_bytes
    if row.start_at is not None:
        standin.plan_windows[assignment["id"]] = (row.start_at, row.end_at)
