"""All tables; importing this module registers every model on Base.metadata."""

from db.models.catalogue import CatalogueSnapshot
from db.models.events import OrderEvent
from db.models.order import Esim, Order, OrderStatus
from db.models.tracking import CallbackEvent, EsimBundle, NotificationSent
from db.models.user import User

__all__ = [
    "CallbackEvent",
    "CatalogueSnapshot",
    "Esim",
    "EsimBundle",
    "NotificationSent",
    "Order",
    "OrderEvent",
    "OrderStatus",
    "User",
]
