"""The User service publishes no Kafka events: others ask it over RPC."""
