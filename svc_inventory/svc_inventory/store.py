"""The stock store: deductions, restorations and adjustments by hand, each one transaction with its event."""
from contextlib import nullcontext

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects.postgresql import insert

from shop_common.errors import InsufficientStock, ProductNotFound, ReservationNotFound
from shop_common.messaging import events as shop_events
from shop_common.messaging import inbox as inbox_log
from shop_common.messaging import outbox as outbox_log
from shop_common.storage.db import StoreProvider
from svc_inventory import events
from svc_inventory.models import ReservationState as State
from svc_inventory.models import inbox, outbox, products, stock_ledger, stock_reservations
from svc_inventory.schemas import ledger_view, reservation_view
from svc_inventory.service_name import NAME

CONSUMER = NAME
# The statements of every order's deduction, built once with parameters (docs/performance.md, item 20);
# parameters named like a column would be taken for that column's value.
RESERVING = insert(stock_reservations).on_conflict_do_nothing().returning(stock_reservations.c.order_id)
# One conditional UPDATE: concurrent orders can never drive stock below zero.
TAKING = (update(products).where(products.c.id == bindparam("taken_id"), products.c.stock >= bindparam("taken"))
          .values(stock=products.c.stock - bindparam("taken"), updated_at=func.now()).returning(products.c.stock))
SETTING_STATE = (update(stock_reservations).where(stock_reservations.c.order_id == bindparam("reserved_id"))
                 .values(state=bindparam("new_state"), items=bindparam("new_items"), updated_at=func.now()))
# Everything Inventory says about an order: sent again when the order's events come again,
# since the Order service may have lost the answers.
ANSWERS = (shop_events.STOCK_UPDATED, shop_events.STOCK_UNAVAILABLE, shop_events.STOCK_RESTORED)


class _SoldOut(Exception):
    def __init__(self, product_id, requested):
        self.product_id, self.requested = product_id, requested


class StockStore:
    def __init__(self, transactions):
        self.transactions = transactions

    def deduct_for_order(self, event, lines):
        """Deduct every line or none. Returns the lines deducted ({product_id, quantity, stock})."""
        order_id = event["order_id"]
        with self.transactions.begin() as session:
            if not inbox_log.claim(session, inbox, event, CONSUMER):
                # Seen before: the Order service may have lost our answer, so send it again.
                outbox_log.republish(session, outbox, order_id, ANSWERS)
                return []
            created = session.execute(RESERVING, {"order_id": order_id, "state": State.DEDUCTING, "items": []}).first()
            if created is None:
                # Decided before: a VOIDED order (payment failed first) or a replay.
                return []
            try:
                # A sold-out line must undo the lines taken before it (a savepoint); a lone line took nothing.
                with session.begin_nested() if len(lines) > 1 else nullcontext():
                    changed = [self._take(session, product_id, quantity) for product_id, quantity in lines]
            except _SoldOut as sold_out:
                self._set_state(session, order_id, State.DEDUCTING, State.UNAVAILABLE, [])
                outbox_log.add(session, outbox, events.stock_unavailable(order_id, sold_out.product_id,
                                                                         sold_out.requested))
                return []
            self._set_state(session, order_id, State.DEDUCTING, State.DEDUCTED, changed)
            outbox_log.add(session, outbox, events.stock_updated(order_id, changed))
        return changed

    def release_for_order(self, event):
        """The order ended without being paid (OrderCompleted): give back what it took.

        Answers with StockRestored (what was given back, maybe nothing) unless
        the order never got stock, which the Order service knows already.
        Returns the lines restored ({product_id, quantity, stock}).
        """
        order_id = event["order_id"]
        if shop_events.order_was_paid(event):  # nearly every order: the claim alone, without BEGIN and COMMIT
            with self.transactions.one_statement() as statement:
                if inbox_log.claim(statement, inbox, event, CONSUMER):
                    return []
        with self.transactions.begin() as session:
            if not inbox_log.claim(session, inbox, event, CONSUMER):
                outbox_log.republish(session, outbox, order_id, ANSWERS)
                return []
            if shop_events.order_was_paid(event):
                return []
            reason = f"order_{event['payload']['status'].lower()}"
            voided = session.execute(RESERVING, {"order_id": order_id, "state": State.VOIDED, "items": []}).first()
            if voided is not None:
                # The order ended before its OrderCreated was applied here (it was dead-lettered):
                # it never took stock, and now never will.
                outbox_log.add(session, outbox, events.stock_restored(order_id, [], reason))
                return []
            reservation = session.execute(
                select(stock_reservations).where(stock_reservations.c.order_id == order_id).with_for_update()
            ).one()
            if reservation.state != State.DEDUCTED:
                return []
            restored = []
            for line in sorted(reservation.items, key=lambda line: line["product_id"]):
                stock = session.execute(
                    update(products).where(products.c.id == line["product_id"])
                    .values(stock=products.c.stock + line["quantity"], updated_at=func.now())
                    .returning(products.c.stock)
                ).scalar_one()
                restored.append({"product_id": line["product_id"], "quantity": line["quantity"], "stock": stock})
            self._set_state(session, order_id, State.DEDUCTED, State.RESTORED, reservation.items)
            outbox_log.add(session, outbox, events.stock_restored(order_id, restored, reason))
        return restored

    def get_reservation(self, order_id):
        with self.transactions.one_statement() as statement:
            row = statement.execute(
                select(stock_reservations).where(stock_reservations.c.order_id == order_id)
            ).first()
        if row is None:
            raise ReservationNotFound("no stock decision for this order", {"order_id": order_id})
        return reservation_view(row)


    def adjust(self, product_id, delta, reason, actor):
        """Add (or remove) units atomically, never below zero, with a ledger entry and a StockAdjusted event.

        A delta, not a new total: an order deducting at the same moment is
        never overwritten.
        """
        with self.transactions.begin() as session:
            stock = session.execute(
                update(products).where(products.c.id == product_id, products.c.stock + delta >= 0)
                .values(stock=products.c.stock + delta, updated_at=func.now()).returning(products.c.stock)
            ).scalar_one_or_none()
            if stock is None:
                current = session.execute(select(products.c.stock).where(products.c.id == product_id)).scalar()
                if current is None:
                    raise ProductNotFound("product not found", {"product_id": product_id})
                raise InsufficientStock(f"only {current} in stock: cannot remove {-delta}",
                                        {"product_id": product_id, "stock": current, "delta": delta})
            return self._record_adjustment(session, product_id, delta, stock, reason, actor)

    def set_level(self, product_id, stock, reason, actor):
        """Set the stock to a number (the admin's PATCH), recorded as the delta it makes.

        The row is locked while the delta is worked out, so a deduction at the
        same moment lands before or after it, never in between. None when the
        stock is that number already (nothing to record).
        """
        with self.transactions.begin() as session:
            current = session.execute(select(products.c.stock).where(products.c.id == product_id)
                                      .with_for_update()).scalar()
            if current is None:
                raise ProductNotFound("product not found", {"product_id": product_id})
            if current == stock:
                return None
            session.execute(update(products).where(products.c.id == product_id)
                            .values(stock=stock, updated_at=func.now()))
            return self._record_adjustment(session, product_id, stock - current, stock, reason, actor)

    @staticmethod
    def _record_adjustment(session, product_id, delta, stock, reason, actor):
        entry = session.execute(stock_ledger.insert().values(
            product_id=product_id, delta=delta, stock_after=stock, reason=reason, actor=actor,
        ).returning(stock_ledger)).one()
        outbox_log.add(session, outbox, events.stock_adjusted(product_id, delta, stock, reason, actor),
                       key=product_id)
        return ledger_view(entry)

    def history(self, product_id, limit=100):
        """The product's adjustments by hand, newest first."""
        with self.transactions.begin() as session:
            rows = session.execute(select(stock_ledger).where(stock_ledger.c.product_id == product_id)
                                   .order_by(stock_ledger.c.id.desc()).limit(limit)).all()
        return [ledger_view(row) for row in rows]

    @staticmethod
    def _take(session, product_id, quantity):
        stock = session.execute(TAKING, {"taken_id": product_id, "taken": quantity}).scalar_one_or_none()
        if stock is None:
            raise _SoldOut(product_id, quantity)
        return {"product_id": product_id, "quantity": quantity, "stock": stock}

    @staticmethod
    def _set_state(session, order_id, current, target, items):
        State.check(current, target)
        session.execute(SETTING_STATE, {"reserved_id": order_id, "new_state": target, "new_items": items})


class Stock(StoreProvider):
    store_class = StockStore
