"""PostgreSQL (engines, bounded pools, transactions, migrations) and the Redis caches."""
