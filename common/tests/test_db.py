"""What a database error may say about the row it was writing, and how pools meet closed connections."""
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shop_common.storage.db import make_engine

SECRET = "$argon2id$v=19$m=65536,t=3,p=4$c2VjcmV0LWhhc2g"


def test_a_failed_statement_never_carries_its_parameters():
    """Its message reaches the logs (a 500's cause): a password hash or an email must not."""
    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", pool_size=1)
    try:
        with pytest.raises(DBAPIError) as failed, engine.connect() as connection:
            connection.execute(text("SELECT :hash, :email, 1 / 0"), {"hash": SECRET, "email": "someone@example.com"})
        assert "division by zero" in str(failed.value)
        assert "hidden due to hide_parameters" in str(failed.value)
        assert "argon2" not in str(failed.value) and "someone@example.com" not in str(failed.value)
    finally:
        engine.dispose()


def test_a_database_out_of_reach_or_of_free_connections_is_unavailable_not_an_error():
    """DatabaseUnavailable is a TransientError: Kafka handlers retry it, RPC callers get a 503."""
    from shop_common.errors import DatabaseUnavailable, TransientError
    from shop_common.storage.db import Transactions

    assert issubclass(DatabaseUnavailable, TransientError) and DatabaseUnavailable.status == 503
    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", pool_size=1, pool_timeout=0.5)
    transactions = Transactions(engine)
    try:
        with transactions.begin() as holding:
            holding.execute(text("SELECT 1"))  # the pool's only connection, held
            with pytest.raises(DatabaseUnavailable) as waited, transactions.begin() as session:
                session.execute(text("SELECT 1"))
            assert waited.value.details == {"cause": "TimeoutError"}
        with transactions.begin() as session:  # given back: served again
            assert session.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
    refused = Transactions(make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/postgres"))
    with pytest.raises(DatabaseUnavailable) as away, refused.begin() as session:
        session.execute(text("SELECT 1"))
    assert away.value.details == {"cause": "OperationalError"}


def _backend_pid(transactions):
    with transactions.begin() as session:
        return session.execute(text("SELECT pg_backend_pid()")).scalar()


def _terminate(pid):
    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", pool_size=1)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    finally:
        engine.dispose()


@contextmanager
def pool_whose_connection_was_closed(ping_after_idle_seconds, pool_size=1):
    """Transactions over a pool whose one used connection's backend was then terminated; its pid."""
    from shop_common.storage.db import Transactions

    engine = make_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", pool_size=pool_size,
                         ping_after_idle_seconds=ping_after_idle_seconds)
    transactions = Transactions(engine)
    try:
        closed = _backend_pid(transactions)
        _terminate(closed)
        yield transactions, closed
    finally:
        engine.dispose()


def test_a_connection_closed_while_idle_in_the_pool_is_replaced_before_use():
    """Pinged because it sat idle past the threshold (0 s here): the transaction never sees it broken."""
    with pool_whose_connection_was_closed(ping_after_idle_seconds=0) as (transactions, closed):
        assert _backend_pid(transactions) != closed  # a new connection, no error


def test_a_connection_closed_while_briefly_idle_fails_one_transaction_as_unavailable_then_the_pool_recovers():
    """Not pinged (back in use within the threshold): the one transaction on it is DatabaseUnavailable,
    which callers retry, and the pool replaces its connections."""
    from shop_common.errors import DatabaseUnavailable

    with pool_whose_connection_was_closed(ping_after_idle_seconds=3600, pool_size=2) as (transactions, closed):
        with pytest.raises(DatabaseUnavailable), transactions.begin() as session:
            session.execute(text("SELECT 1"))
        assert _backend_pid(transactions) != closed


def _in_its_own_transaction(connection):
    # A statement sent after a BEGIN of its own starts later than its transaction; one that is its
    # own transaction starts with it.
    return not connection.execute(text("SELECT now() = statement_timestamp()")).scalar()


def test_one_statement_needs_no_begin_and_leaves_the_pool_as_it_found_it():
    from shop_common.storage.db import Transactions

    transactions = Transactions(make_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", pool_size=1))
    try:
        with transactions.one_statement() as statement:
            assert statement.execute(text("SELECT now() = statement_timestamp()")).scalar()
        # The same (only) connection again: a transaction with BEGIN, as before.
        with transactions.begin() as session:
            assert _in_its_own_transaction(session)
        with transactions.one_statement() as statement:
            statement.execute(text("SELECT 1"))
            with pytest.raises(RuntimeError, match="begin"):
                statement.execute(text("SELECT 2"))
    finally:
        transactions.engine.dispose()


def test_one_statement_writes_without_commit_and_reports_an_unreachable_database():
    from shop_common.errors import DatabaseUnavailable
    from shop_common.storage.db import Transactions

    transactions = Transactions(make_engine("postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", pool_size=1))
    try:
        with transactions.begin() as session:
            session.execute(text("CREATE TEMP TABLE IF NOT EXISTS one_statement_probe (n int)"))
        with transactions.one_statement() as statement:
            statement.execute(text("INSERT INTO one_statement_probe VALUES (1)"))
        with pytest.raises(RuntimeError), transactions.begin() as session:
            assert session.execute(text("SELECT count(*) FROM one_statement_probe")).scalar() == 1
            raise RuntimeError("rolled back, yet the insert stays: it committed on its own")
        with transactions.begin() as session:
            assert session.execute(text("SELECT count(*) FROM one_statement_probe")).scalar() == 1
    finally:
        transactions.engine.dispose()
    refused = Transactions(make_engine("postgresql+psycopg2://postgres@127.0.0.1:1/postgres"))
    with pytest.raises(DatabaseUnavailable), refused.one_statement() as statement:
        statement.execute(text("SELECT 1"))
