"""Events and their delivery: contracts and versions, signing, the Kafka entrypoint and producer, outbox, inbox, dead letters."""
