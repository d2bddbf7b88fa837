"""All tables; importing this module registers every model on Base.metadata."""

from db.models.admin_alert import AdminAlert
from db.models.catalogue import CatalogueSnapshot
from db.models.order import Esim, Order, OrderStatus
from db.models.tracking import CallbackEvent, EsimBundle, NotificationSent
from db.models.user import User

__all__ = [
    "AdminAlert",
    "CallbackEvent",
    "CatalogueSnapshot",
    "Esim",
    "EsimBundle",
    "NotificationSent",
    "Order",
    "OrderStatus",
    "User",
]
