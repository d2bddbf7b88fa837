"""All tables; importing this module registers every model on Base.metadata."""

from db.models.admin_action import AdminAction
from db.models.broadcast import Broadcast, BroadcastRecipient
from db.models.catalogue import CatalogueSnapshot
from db.models.order import Esim, Order, OrderStatus
from db.models.support import SupportTicket, TicketMessage, TicketMessageCopy
from db.models.tracking import CallbackEvent, EsimBundle, NotificationSent
from db.models.user import User

__all__ = [
    "AdminAction",
    "Broadcast",
    "BroadcastRecipient",
    "CallbackEvent",
    "CatalogueSnapshot",
    "Esim",
    "EsimBundle",
    "NotificationSent",
    "Order",
    "OrderStatus",
    "SupportTicket",
    "TicketMessage",
    "TicketMessageCopy",
    "User",
]
