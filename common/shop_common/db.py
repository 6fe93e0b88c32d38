"""SQLAlchemy engine and transactions, shared by every service's store.

Each service wraps this in a DependencyProvider of its own
(``svc_x.dependencies``) whose methods speak the domain; this module only
knows how to open a transaction.
"""
from contextlib import contextmanager

import shop_common.green  # noqa: F401  (psycopg2 must be green before engines exist)
from nameko import config
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker


def make_engine(url, pool_size=10):
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        # An error's log line must never carry row values (password hashes, emails, addresses).
        hide_parameters=True,
    )


class Transactions:
    """Opens sessions that commit on success and roll back on any error."""

    def __init__(self, engine):
        self.engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @contextmanager
    def begin(self):
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


class StoreProvider(DependencyProvider):
    """Gives each worker the service's store over one shared engine.

    Subclasses name the store class (``store_class``); the store's methods
    speak the domain, each one a transaction.
    """

    store_class = None
    pool_size = 10

    def setup(self):
        self.engine = make_engine(config["DATABASE_URL"], pool_size=self.pool_size)
        self.transactions = Transactions(self.engine)

    def stop(self):
        self.engine.dispose()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.store_class(self.transactions)
