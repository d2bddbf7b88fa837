"""All tables; importing this module registers every model on Base.metadata."""

from db.models.admin_action import AdminAction
from db.models.admin_alert import AdminAlert
from db.models.broadcast import Broadcast, BroadcastRecipient
from db.models.catalogue import CatalogueSnapshot
from db.models.doctor import EsimCheck
from db.models.events import OrderEvent
from db.models.gift import Gift, GiftStatus
from db.models.network import NetworkSnapshot
from db.models.order import Esim, Order, OrderKind, OrderStatus
from db.models.star_ledger import StarLedgerEntry
from db.models.support import SupportTicket, TicketMessage, TicketMessageCopy
from db.models.tracking import CallbackEvent, EsimBundle, NotificationSent
from db.models.user import User

__all__ = [
    "AdminAction",
    "AdminAlert",
    "Broadcast",
    "BroadcastRecipient",
    "CallbackEvent",
    "CatalogueSnapshot",
    "Esim",
    "EsimBundle",
    "EsimCheck",
    "Gift",
    "GiftStatus",
    "NetworkSnapshot",
    "NotificationSent",
    "Order",
    "OrderEvent",
    "OrderKind",
    "OrderStatus",
    "StarLedgerEntry",
    "SupportTicket",
    "TicketMessage",
    "TicketMessageCopy",
    "User",
]
