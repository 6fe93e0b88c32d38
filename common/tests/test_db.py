"""What a database error may say about the row it was writing."""
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
