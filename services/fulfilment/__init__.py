"""Fulfilment: paid orders → eSIM Go transaction → the eSIM in the buyer's chat, or a refund.

- worker.py: the leasing loop (which orders are due, one step each, errors bounded)
- lease.py: one leased order (guarded writes, renewals while it is worked on)
- purchase.py: the transaction, after looking for what an earlier attempt bought
- adoption.py: which eSIM Go order an order may adopt after an ambiguous failure
- store.py: linking the purchase to the order, refusing what is not the buyer's
- sender.py: sending what services.delivery builds, again when a blocked buyer returns
- refunds.py: Stars refunds, and refunds left to the admins
- factory.py: the one place the parts are put together
"""

from services.fulfilment.factory import create_fulfilment_worker
from services.fulfilment.sender import deliver_on_return
from services.fulfilment.settings import WorkerSettings
from services.fulfilment.worker import FulfilmentWorker

__all__ = ["FulfilmentWorker", "WorkerSettings", "create_fulfilment_worker", "deliver_on_return"]
