"""Top-up: another bundle onto an eSIM the user already has (same ICCID, nothing to install)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

from db.models import Esim
from handlers.myesims_render import TopUpCallback


class TopUpPickCallback(CallbackData, prefix="tup"):
    """A bundle chosen for an eSIM: compatibility check, then the confirm card."""

    esim_id: int
    bundle: str


def topup_callback_data(esim: Esim) -> str:
    """The "Top up" button's data for an eSIM (notifications; /myesims uses the same factory)."""
    return TopUpCallback(esim_id=esim.id).pack()
