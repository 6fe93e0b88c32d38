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
    return session.execute(claiming(table), claim_parameters(event, consumer)).rowcount == 1


@functools.cache
def claiming(table):
    """The claim as a statement built once: its values are parameters (``claim_parameters``) named
    unlike any column, so it can also be a CTE beside other writes, claiming in their round trip;
    it returns the event id the first time only."""
    return (insert(table).values(event_id=bindparam("claimed_event_id"), consumer=bindparam("claimed_consumer"),
                                 event_type=bindparam("claimed_event_type"))
            .on_conflict_do_nothing().returning(table.c.event_id))


def claim_parameters(event, consumer):
    return {"claimed_event_id": event["event_id"], "claimed_consumer": consumer,
            "claimed_event_type": event["event_type"]}
