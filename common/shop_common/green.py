"""Make psycopg2 cooperate with eventlet.

psycopg2 is a C extension: without this, every query blocks the whole
Nameko process (all workers, the Kafka heartbeat, the AMQP consumer) until
PostgreSQL answers. Import this module before creating any engine.
"""
from psycogreen.eventlet import patch_psycopg

patch_psycopg()
