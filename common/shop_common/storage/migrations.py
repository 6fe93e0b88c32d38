"""Alembic ``env.py`` body shared by every service.

Each service's ``migrations/env.py`` calls ``run_migrations`` with its
metadata and version table; the URL comes from the service's config.yaml
(``DATABASE_URL``, env overrides applied) unless alembic is given one.
"""
from alembic import context
from sqlalchemy import create_engine, pool, text

from shop_common.config import load_config


def database_url(config_path):
    return load_config(config_path)["DATABASE_URL"]


def run_migrations(metadata, version_table, config_path):
    url = context.config.get_main_option("sqlalchemy.url") or database_url(config_path)
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, version_table=version_table, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=pool.NullPool, hide_parameters=True)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, version_table=version_table)
        with context.begin_transaction():
            # Two instances starting at once migrate one after the other, never side by side.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": version_table})
            context.run_migrations()
    engine.dispose()


def create_messaging_tables():
    """Create the outbox and inbox tables (see shop_common.messaging.outbox / .inbox).

    Called from each service's first migration. Frozen: a later change to
    these tables gets a new helper and a new migration, never an edit here.
    """
    import sqlalchemy as sa
    from alembic import op

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(120), nullable=False),
        sa.Column("message_key", sa.String(120)),
        sa.Column("envelope", sa.dialects.postgresql.JSONB, nullable=False),
        sa.Column("headers", sa.dialects.postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL"))
    op.create_table(
        "inbox",
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def index_messaging_tables():
    """Indexes for looking up an order's outbox rows and for pruning both tables (migration 0003).

    Frozen, like ``create_messaging_tables``.
    """
    import sqlalchemy as sa
    from alembic import op

    op.create_index("ix_outbox_message_key", "outbox", ["message_key"])
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"],
                    postgresql_where=sa.text("published_at IS NOT NULL"))
    op.create_index("ix_inbox_processed_at", "inbox", ["processed_at"])


def create_outbox_wakeup():
    """Wake the outbox relays from inside PostgreSQL: a row that becomes unpublished (inserted, or marked for
    publishing again) notifies ``shop_outbox`` at commit, so writers send no ``pg_notify`` statement of their
    own (one round trip less per event; docs/performance.md). Frozen, like ``create_messaging_tables``.
    """
    from alembic import op

    op.execute("""
        CREATE FUNCTION outbox_wake_relay() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('shop_outbox', '');
            RETURN NULL;
        END
        $$""")
    op.execute("""
        CREATE TRIGGER outbox_wakes_relay AFTER INSERT OR UPDATE OF published_at ON outbox
        FOR EACH ROW WHEN (NEW.published_at IS NULL) EXECUTE FUNCTION outbox_wake_relay()""")


def drop_outbox_wakeup():
    from alembic import op

    op.execute("DROP TRIGGER outbox_wakes_relay ON outbox")
    op.execute("DROP FUNCTION outbox_wake_relay()")
