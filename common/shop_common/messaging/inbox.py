"""Inbox: which events a consumer has already applied.

A handler claims the event id in the same transaction as its effect; a second
delivery finds the claim and does nothing. Rolled back effect, rolled back
claim: the redelivery then applies it.
"""
import functools

from sqlalchemy import Column, DateTime, Index, MetaData, String, Table, bindparam, func
from sqlalchemy.dialects.postgresql import insert


def inbox_table(metadata: MetaData):
    table = Table(
        "inbox",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("consumer", String(100), primary_key=True),
        Column("event_type", String(64), nullable=False),
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    Index("ix_inbox_processed_at", table.c.processed_at)  # pruning (shop_common.messaging.outbox.OutboxRelay.prune)
    return table


def claim(session, table, event, consumer):
    """True the first time ``consumer`` sees ``event``, False ever after."""
    # The values as parameters, not in the statement: SQLAlchemy builds and compiles it once per table.
    result = session.execute(_claiming(table), {
        "event_id": event["event_id"], "consumer": consumer, "event_type": event["event_type"]})
    return result.rowcount == 1


@functools.cache
def _claiming(table):
    return insert(table).on_conflict_do_nothing()


CLAIM_COLUMNS = ("event_id", "consumer", "event_type")


def claiming(table, prefix):
    """A claim whose values are parameters named ``prefix`` + column (fill them from
    ``claim_parameters``), returning the event id the first time only: for a statement built once
    that claims its event beside other writes (a CTE), in one round trip."""
    return (insert(table).values({column: bindparam(prefix + column) for column in CLAIM_COLUMNS})
            .on_conflict_do_nothing().returning(table.c.event_id))


def claim_parameters(event, consumer, prefix):
    values = {"event_id": event["event_id"], "consumer": consumer, "event_type": event["event_type"]}
    return {prefix + column: value for column, value in values.items()}
