"""SQLAlchemy engine and transactions, shared by every service's store.

Each service wraps this in a DependencyProvider of its own
(``svc_x.store``) whose methods speak the domain; this module only
knows how to open a transaction.
"""
import time
from contextlib import contextmanager

import shop_common.green  # noqa: F401  (psycopg2 must be green before engines exist)
from nameko import config
from nameko.extensions import DependencyProvider
from sqlalchemy import create_engine, event
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shop_common.errors import DatabaseUnavailable


# Connections per store and process: a process's workers (up to 20) share them and wait for one
# rather than open more. PostgreSQL's max_connections is shared by every instance of every
# service (docs/deploy.md counts them); unbounded pools exhausted it when events flooded in.
POOL_SIZE = 4
POOL_TIMEOUT_SECONDS = 10
# What a database away, restarting or out of connections raises: retried, never a 500.
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
# A connection that sat in the pool this long is pinged before it is used: a restarted database or
# a proxy's idle timeout may have closed it. SQLAlchemy's pool_pre_ping pinged before every
# transaction, a sixth of the statements an order costs (docs/performance.md); a connection back
# in use within seconds is used as it is, and one that broke meanwhile fails its transaction as
# DatabaseUnavailable, which is retried (SQLAlchemy then replaces every connection of the pool).
PING_AFTER_IDLE_SECONDS = 10


def make_engine(url, pool_size=POOL_SIZE, pool_timeout=POOL_TIMEOUT_SECONDS, isolation_level=None,
                ping_after_idle_seconds=PING_AFTER_IDLE_SECONDS):
    options = {"isolation_level": isolation_level} if isolation_level else {}
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_recycle=1800,
        # An error's log line must never carry row values (password hashes, emails, addresses).
        hide_parameters=True,
        **options,
    )
    _ping_connections_idle_for(engine, ping_after_idle_seconds)
    return engine


def _ping_connections_idle_for(engine, seconds):
    @event.listens_for(engine, "checkin")
    def remember_when_idle(dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def ping_if_idle_long(dbapi_connection, record, proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out another (SQLAlchemy's own retry).
            raise DisconnectionError("a pooled connection was closed while idle") from exc


class Transactions:
    """Opens transactions that commit on success and roll back on any error.

    Each is a SQLAlchemy Core connection: the stores speak Core, and the ORM session that used to
    wrap it cost a sixth of a transaction's client CPU for nothing (docs/performance.md, item 19).
    A database that cannot be reached raises ``DatabaseUnavailable`` (a TransientError): Kafka
    handlers retry it, an RPC caller gets a 503.
    """

    def __init__(self, engine):
        self.engine = engine

    @contextmanager
    def begin(self):
        with _reported_unavailable(), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def one_statement(self):
        """A connection for one statement, which PostgreSQL runs atomically on its own.

        ``begin()`` costs two round trips besides its statements (psycopg2 sends a BEGIN
        before the first, then the COMMIT); a lone read or write needs neither. A second
        statement is refused: it would not share the first one's transaction. Failures
        are reported as ``begin()`` reports them.
        """
        with _reported_unavailable(), self.engine.connect() as connection:
            dbapi_connection = connection.connection.dbapi_connection
            dbapi_connection.autocommit = True  # psycopg2 keeps this on the client: no statement is sent
            try:
                yield _OneStatement(connection)
            finally:
                if not dbapi_connection.closed:
                    dbapi_connection.autocommit = False  # back to the pool as every other connection is


@contextmanager
def _reported_unavailable():
    # Outermost, so a failed connect, statement or commit alike becomes DatabaseUnavailable.
    try:
        yield
    except UNAVAILABLE as exc:
        raise DatabaseUnavailable("the database is unavailable", {"cause": type(exc).__name__}) from exc


class _OneStatement:
    def __init__(self, connection):
        self._connection = connection
        self._used = False

    def execute(self, statement, parameters=None):
        if self._used:
            raise RuntimeError("one_statement() runs a single statement: use begin() for more")
        self._used = True
        return self._connection.execute(statement, parameters)


class StoreProvider(DependencyProvider):
    """Gives each worker the service's store over one shared engine.

    Subclasses name the store class (``store_class``); the store's methods
    speak the domain, each one a transaction.
    """

    store_class = None
    pool_size = POOL_SIZE

    def setup(self):
        self.engine = make_engine(config["DATABASE_URL"], pool_size=self.pool_size)
        self.transactions = Transactions(self.engine)

    def stop(self):
        self.engine.dispose()

    kill = stop

    def get_dependency(self, worker_ctx):
        return self.store_class(self.transactions)
