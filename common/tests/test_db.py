"""What a database error may say about the row it was writing."""
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shop_common.db import make_engine

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
