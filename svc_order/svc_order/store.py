"""The orders store: orders, their history, notifications, outbox and inbox."""
import uuid

from nameko import config
from sqlalchemy import Boolean, bindparam, case, exists, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert
from sqlalchemy.exc import IntegrityError

from shop_common.errors import AmountOutOfRange, IdempotencyKeyReused, OrderNotFound, PaymentMismatch
from shop_common.messaging import events as shop_events
from shop_common.messaging import inbox as inbox_log
from shop_common.messaging import outbox as outbox_log
from shop_common.money import charge_range, format_amount
from shop_common.rpc import check_deadline
from shop_common.storage.db import StoreProvider
from svc_order import events
from svc_order.models import (
    CancelReason, Order, OrderStatus, inbox, message_for, notifications, order_history, order_items, orders, outbox,
)
from svc_order.schemas import history_view, notification_view, order_view
from svc_order.service_name import NAME

CONSUMER = NAME

# What each incoming event means for the order.
FACTS = {
    shop_events.STOCK_UPDATED: Order.record_stock_deducted,
    shop_events.STOCK_UNAVAILABLE: Order.record_stock_unavailable,
    shop_events.STOCK_RESTORED: Order.record_stock_restored,
    shop_events.PAYMENT_SUCCESS: Order.record_payment_succeeded,
    shop_events.PAYMENT_FAILED: Order.record_payment_failed,
    shop_events.PAYMENT_REFUNDED: Order.record_refund,
    shop_events.PAYMENT_VOIDED: Order.record_payment_voided,
    shop_events.PAYMENT_ACTION_REQUIRED: Order.record_payment_action_required,
}
# An item's columns in an order's view, beside the order's own.
ITEM_COLUMNS = ("product_id", "name", "quantity", "unit_price_cents")
# The event a stuck order needs again: an open order its start, a final one its outcome.
REDRIVEN_EVENT = {True: shop_events.ORDER_COMPLETED, False: shop_events.ORDER_CREATED}
MAX_REDRIVE_BACKOFF_STEPS = 4  # waits grow 1, 2, 4, 8, 16 times the redrive age, then stay


def _order_created_version():
    """Held at an older version while a rollout teaches consumers the latest (see README, events)."""
    version = config.get("ORDER_CREATED_VERSION")
    return int(version) if version not in (None, "") else None


# The order's columns a placement writes (the rest have server defaults).
PLACED_COLUMNS = ("id", "user_id", "status", "stock_status", "payment_status", "total_cents", "currency",
                  "payment_method", "shipping_address", "idempotency_key", "request_fingerprint", "message")


def _placing():
    """Placing an order as one statement, which PostgreSQL runs atomically (no BEGIN and COMMIT round
    trips): data-modifying CTEs insert the order, its items (from one array per column, an element per
    line), its history entry and its OrderCreated event, and the order joined with its items comes back,
    so the view is built from what was written. Built once from parameters, so SQLAlchemy neither
    builds nor compiles it again per order (docs/performance.md, item 20). Parameters are prefixed:
    a parameter named like a column would be taken for that column's value in every INSERT."""
    new_order = (orders.insert().values({column: bindparam(f"placed_{column}") for column in PLACED_COLUMNS})
                 .returning(*orders.c).cte("new_order"))
    lines = func.unnest(*(bindparam(f"line_{column}", type_=ARRAY(order_items.c[column].type))
                          for column in ITEM_COLUMNS)).table_valued(*ITEM_COLUMNS).render_derived(name="line")
    each_line = select(new_order.c.id, *lines.c).select_from(new_order.join(lines, true()))  # one order, its lines
    new_items = (order_items.insert().from_select(["order_id", *ITEM_COLUMNS], each_line)
                 .returning(*order_items.c).cte("new_items"))
    history = order_history.insert().values(
        order_id=bindparam("placed_id"), event_id=bindparam("event_event_id"),
        event_type=bindparam("event_event_type"), status_after=bindparam("placed_status"),
        detail=bindparam("history_detail"),
    ).cte("history")
    event = outbox_log.staging(outbox, "event_").cte("event")
    return (select(new_order, *(new_items.c[column] for column in ITEM_COLUMNS))
            .select_from(new_order.join(new_items, new_items.c.order_id == new_order.c.id))
            .order_by(new_items.c.product_id)
            .add_cte(history, event))


PLACING = _placing()
# An event applied to an order, as statements built once (item 20; parameters named unlike any column).


def _locking():
    """The event claimed and its order locked with its items, in one statement: each row is the
    order with one item's columns and ``claimed``, true the first time this event is seen. An
    unknown order returns nothing and its transaction rolls back, claim included."""
    claimed = inbox_log.claiming(inbox).cte("claimed")
    return (select(orders, *(order_items.c[column] for column in ITEM_COLUMNS),
                   exists(select(claimed.c.event_id)).label("claimed"))
            .join(order_items, order_items.c.order_id == orders.c.id).where(orders.c.id == bindparam("locked_id"))
            .order_by(order_items.c.product_id).with_for_update(of=orders))


LOCKING = _locking()


def _recording(reached):
    """The order's new state and its history entry as one statement (data-modifying CTEs, one round
    trip instead of two); an outcome ``reached`` adds the shopper's notification and OrderCompleted
    (one instead of three). The order comes back as written."""
    recording = update(orders).where(orders.c.id == bindparam("recorded_id")).values(
        status=bindparam("new_status"), stock_status=bindparam("new_stock_status"),
        payment_status=bindparam("new_payment_status"), cancel_reason=bindparam("new_cancel_reason"),
        message=bindparam("new_message"), payment_action=bindparam("new_payment_action", type_=JSONB),
        version=orders.c.version + 1, updated_at=func.now(),
        settled_at=case((bindparam("settled", type_=Boolean), func.coalesce(orders.c.settled_at, func.now())),
                        else_=orders.c.settled_at),
    ).returning(orders)
    history = order_history.insert().values(
        order_id=bindparam("recorded_id"), event_id=bindparam("history_event_id"),
        event_type=bindparam("history_event_type"), status_after=bindparam("new_status"),
        detail=bindparam("history_detail"),
    ).cte("history")
    if not reached:
        return recording.add_cte(history)
    notification = insert(notifications).values(
        user_id=bindparam("notified_user_id"), order_id=bindparam("recorded_id"),
        kind=bindparam("notified_kind"), message=bindparam("new_message"),
    ).on_conflict_do_nothing().cte("notification")
    return recording.add_cte(history, notification, outbox_log.staging(outbox, "event_").cte("event"))


RECORDING = {reached: _recording(reached) for reached in (False, True)}


class OrderStore:
    def __init__(self, transactions):
        self.transactions = transactions

    def find_by_idempotency_key(self, user_id, key, fingerprint):
        """The order this key placed, or None; IdempotencyKeyReused when it placed a different request."""
        with self.transactions.begin() as session:
            row = session.execute(
                select(orders).where(orders.c.user_id == user_id, orders.c.idempotency_key == key)
            ).first()
            if row is None:
                return None
            if row.request_fingerprint not in (None, fingerprint):  # None: placed before fingerprints existed
                raise IdempotencyKeyReused("this Idempotency-Key already placed an order with a different request",
                                           {"Idempotency-Key": "use a new key for a new order",
                                            "order_id": row.id})
            return self._view(session, row), row.version

    def place(self, user_id, priced_lines, currency, payment_method, address, idempotency_key, deadline=None,
              fingerprint=None):
        """Write the order and its OrderCreated event in one transaction.

        Returns (view, version, created); a concurrent request with the same
        idempotency key gets the order that won, with created=False (or
        IdempotencyKeyReused when that order was a different request). With a
        ``deadline`` (the caller's, as epoch seconds) nothing is committed once
        it has passed: the caller has given up and would never hear of it.
        """
        order_id = str(uuid.uuid4())
        total = sum(line["unit_price_cents"] * line["quantity"] for line in priced_lines)
        smallest, largest = charge_range(currency)
        if not smallest <= total <= largest:
            # Refused before any stock moves: Stripe would refuse to charge it.
            raise AmountOutOfRange(
                f"an order's total must be from {format_amount(smallest, currency)} to "
                f"{format_amount(largest, currency)} {currency}",
                {"total": format_amount(total, currency), "currency": currency})
        created = events.order_created(
            order_id, user_id,
            [{"product_id": line["product_id"], "quantity": line["quantity"],
              "unit_price_cents": line["unit_price_cents"]} for line in priced_lines],
            total, currency, payment_method, version=_order_created_version(),
        )
        placed = dict(
            id=order_id, user_id=user_id, status=OrderStatus.PENDING, stock_status="PENDING",
            payment_status="PENDING", total_cents=total, currency=currency, payment_method=payment_method,
            shipping_address=address, idempotency_key=idempotency_key,
            request_fingerprint=fingerprint if idempotency_key else None, message=message_for(OrderStatus.PENDING),
        )
        parameters = {
            **{f"placed_{column}": value for column, value in placed.items()},
            **{f"line_{column}": [line[column] for line in priced_lines] for column in ITEM_COLUMNS},
            "history_detail": {"total_cents": total},
            **{f"event_{column}": value for column, value in outbox_log.row_of(created).items()},
        }
        check_deadline(deadline)  # raises before the statement: nothing is written
        try:
            with self.transactions.one_statement() as statement:
                rows = statement.execute(PLACING, parameters).all()
            return order_view(rows[0], rows), rows[0].version, True
        except IntegrityError:
            existing = idempotency_key and self.find_by_idempotency_key(user_id, idempotency_key, fingerprint)
            if not existing:
                raise
            return existing[0], existing[1], False

    def apply(self, event):
        """Apply a stock or payment event to its order.

        Returns (view, version, final status reached now or None). A
        redelivered event changes nothing and returns the order as it is.
        """
        fact = FACTS[event["event_type"]]
        with self.transactions.begin() as session:
            # The event claimed, the order locked and its items read in one query (see _locking).
            items = session.execute(LOCKING, {
                "locked_id": event["order_id"], **inbox_log.claim_parameters(event, CONSUMER)}).all()
            if not items:
                raise OrderNotFound("event for an unknown order", {"order_id": event["order_id"]})
            row = items[0]
            if not row.claimed:
                return order_view(row, items), row.version, None
            if event["event_type"] == shop_events.PAYMENT_SUCCESS:
                self._check_amount_paid(row, event["payload"])
            order = Order(row.status, row.stock_status, row.payment_status, row.cancel_reason)
            fact(order)
            return self._record(session, row, items, order, event["event_id"], event["event_type"], event["payload"],
                                payment_action=self._payment_action(row, order, event))

    def cancel_overdue(self, deadline_seconds, limit=100):
        """Cancel orders still PENDING this long after they were placed (their compensations follow).

        Returns [(view, version)] of the orders cancelled.
        """
        age = func.make_interval(0, 0, 0, 0, 0, 0, deadline_seconds)
        cancelled = []
        with self.transactions.begin() as session:
            rows = session.execute(
                select(orders).where(orders.c.settled_at.is_(None), orders.c.status == OrderStatus.PENDING,
                                     orders.c.created_at < func.now() - age)
                .order_by(orders.c.created_at).limit(limit).with_for_update(skip_locked=True)
            ).all()
            for row in rows:
                order = Order(row.status, row.stock_status, row.payment_status, row.cancel_reason)
                order.cancel(CancelReason.DEADLINE)
                view, version, _ = self._record(session, row, self._items(session, row.id), order, None,
                                                "OrderDeadlinePassed", {"deadline_seconds": deadline_seconds})
                cancelled.append((view, version))
        return cancelled

    def cancel(self, order_id, reason, operator_note, operator="unknown"):
        """Cancel one PENDING order on an operator's word (IllegalOrderTransition for any other);
        its compensations follow through OrderCompleted, as for every other outcome. The history
        says who and why."""
        with self.transactions.begin() as session:
            row = session.execute(select(orders).where(orders.c.id == order_id).with_for_update()).first()
            if row is None:
                raise OrderNotFound("order not found", {"order_id": order_id})
            order = Order(row.status, row.stock_status, row.payment_status, row.cancel_reason)
            order.cancel(reason)
            view, version, _ = self._record(session, row, self._items(session, row.id), order, None,
                                            "OrderCancelledByOperator", {"reason": operator_note, "by": operator})
            return view, version

    def find(self, user_ids=None, status=None, older_than_seconds=None, limit=50):
        """Orders for operators, newest first: of these users, in this status, placed this long ago or more."""
        query = select(orders)
        if user_ids is not None:
            query = query.where(orders.c.user_id.in_(user_ids))
        if status is not None:
            query = query.where(orders.c.status == status)
        if older_than_seconds is not None:
            query = query.where(orders.c.created_at
                                < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds))
        with self.transactions.begin() as session:
            rows = session.execute(query.order_by(orders.c.created_at.desc(), orders.c.id).limit(limit)).all()
            return [self._view(session, row) for row in rows]

    @staticmethod
    def _check_amount_paid(row, payload):
        """A payment counts only for exactly this order's total: anything else is a bug or a forgery (dead-lettered,
        the order stays PENDING for an operator)."""
        expected = (format_amount(row.total_cents, row.currency), row.currency)
        if (payload["amount"], payload["currency"]) != expected:
            raise PaymentMismatch("the payment is not for this order's total",
                                  {"order_id": row.id, "paid": f"{payload['amount']} {payload['currency']}",
                                   "total": " ".join(expected)})

    @staticmethod
    def _payment_action(row, order, event):
        """What the shopper needs to authenticate, kept only while they must: the client secret goes with it."""
        if order.payment_status != "REQUIRES_ACTION" or order.is_final:
            return None
        if event["event_type"] == shop_events.PAYMENT_ACTION_REQUIRED:
            return {key: event["payload"][key] for key in ("client_secret", "next_action", "expires_at")}
        return row.payment_action

    def _record(self, session, row, items, order, event_id, event_type, detail, payment_action=None):
        """Store the order's new state with its history; a final status goes out as OrderCompleted.
        ``items``: the order's items in product order, for the view it returns."""
        reached = order.status if order.status != row.status else None
        if event_type == shop_events.PAYMENT_ACTION_REQUIRED:
            detail = {"expires_at": detail["expires_at"]}  # the client secret stays out of the history
        parameters = {
            "recorded_id": row.id, "new_status": order.status, "new_stock_status": order.stock_status,
            "new_payment_status": order.payment_status, "new_cancel_reason": order.cancel_reason,
            "new_message": order.message, "new_payment_action": payment_action, "settled": order.is_settled,
            "history_event_id": event_id, "history_event_type": event_type, "history_detail": detail,
        }
        if reached:
            completed = events.order_completed(row.id, row.user_id, order.status, order.cancel_reason)
            parameters.update({"notified_user_id": row.user_id, "notified_kind": order.status.lower(),
                               **{f"event_{column}": value for column, value in outbox_log.row_of(completed).items()}})
        row = session.execute(RECORDING[bool(reached)], parameters).one()
        return order_view(row, items), row.version, reached

    def get(self, order_id, user_id=None):
        with self.transactions.begin() as session:
            query = select(orders).where(orders.c.id == order_id)
            if user_id is not None:
                query = query.where(orders.c.user_id == user_id)
            row = session.execute(query).first()
            if row is None:
                raise OrderNotFound("order not found", {"order_id": order_id})
            return self._view(session, row), row.version

    def list_for_user(self, user_id, limit=100):
        with self.transactions.begin() as session:
            rows = session.execute(
                select(orders).where(orders.c.user_id == user_id)
                .order_by(orders.c.created_at.desc(), orders.c.id).limit(limit)
            ).all()
            return [self._view(session, row) for row in rows]

    def history(self, order_id):
        with self.transactions.begin() as session:
            rows = session.execute(
                select(order_history).where(order_history.c.order_id == order_id).order_by(order_history.c.id)
            ).all()
        return [history_view(row) for row in rows]

    def notifications_for(self, user_id, limit=100):
        with self.transactions.begin() as session:
            rows = session.execute(
                select(notifications).where(notifications.c.user_id == user_id)
                .order_by(notifications.c.id.desc()).limit(limit)
            ).all()
        return [notification_view(row) for row in rows]

    def stuck_pending(self, older_than_seconds):
        with self.transactions.begin() as session:
            rows = session.execute(
                select(orders.c.id, orders.c.created_at, orders.c.stock_status, orders.c.payment_status)
                .where(orders.c.status == OrderStatus.PENDING,
                       orders.c.created_at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds))
                .order_by(orders.c.created_at).limit(100)
            ).all()
        return [{"id": row.id, "created_at": row.created_at.isoformat(), "stock_status": row.stock_status,
                 "payment_status": row.payment_status} for row in rows]

    def redrive_stuck(self, older_than_seconds, limit=100, order_id=None, operator=None):
        """Publish again the last event of orders that have not moved for this long.

        A PENDING order gets its OrderCreated again, a final order still
        waiting for its compensations its OrderCompleted: the same rows, so
        the same event ids. Inventory and Payment skip what they have applied
        and send their answers again, so whatever the broker lost is
        recovered. Each redrive waits longer than the one before (recorded
        on the order), and the least recently redriven go first.
        Returns the ids of the orders redriven.
        """
        age = func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds)
        due = func.coalesce(orders.c.next_redrive_at, orders.c.updated_at)
        with self.transactions.begin() as session:
            query = select(orders.c.id, orders.c.status, orders.c.redrive_count).where(
                orders.c.settled_at.is_(None), orders.c.updated_at <= func.now() - age,
                orders.c.payment_status != "REQUIRES_ACTION",  # waiting for the shopper, not for an event
                or_(orders.c.next_redrive_at.is_(None), orders.c.next_redrive_at <= func.now()))
            if order_id is not None:
                query = query.where(orders.c.id == order_id)
            stuck = session.execute(query.order_by(due).limit(limit).with_for_update(skip_locked=True)).all()
            redriven = []
            for row in stuck:
                final = row.status in OrderStatus.FINAL
                event_type = REDRIVEN_EVENT[final]
                if not outbox_log.republish(session, outbox, row.id, (event_type,)):
                    continue  # not published yet: the relay is still on it
                backoff = 2 ** min(row.redrive_count, MAX_REDRIVE_BACKOFF_STEPS)
                session.execute(update(orders).where(orders.c.id == row.id).values(
                    redrive_count=orders.c.redrive_count + 1,
                    next_redrive_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0,
                                                                    older_than_seconds * backoff),
                ))
                session.execute(order_history.insert().values(
                    order_id=row.id, event_type=f"{event_type}Redriven", status_after=row.status,
                    detail={"reason": f"no progress for over {older_than_seconds}s",
                            "attempt": row.redrive_count + 1} if operator is None else
                           {"reason": "an operator asked", "by": operator, "attempt": row.redrive_count + 1},
                ))
                redriven.append(row.id)
        return redriven

    def pending_summary(self):
        """How many orders are PENDING, and the age in seconds of the oldest not waiting for its shopper
        (3-D Secure has its own deadline in the Payment service)."""
        waiting_for_us = orders.c.payment_status != "REQUIRES_ACTION"
        with self.transactions.begin() as session:
            count, oldest = session.execute(
                select(func.count(), func.extract("epoch", func.now() - func.min(orders.c.created_at)
                                                  .filter(waiting_for_us)))
                .where(orders.c.status == OrderStatus.PENDING)
            ).one()
        return {"pending": count, "oldest_age_seconds": float(oldest or 0.0)}


    @staticmethod
    def _items(session, order_id):
        return session.execute(
            select(order_items).where(order_items.c.order_id == order_id).order_by(order_items.c.product_id)
        ).all()

    @classmethod
    def _view(cls, session, row):
        return order_view(row, cls._items(session, row.id))


class Orders(StoreProvider):
    store_class = OrderStore
