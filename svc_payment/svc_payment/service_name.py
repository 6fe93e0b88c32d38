"""The service's one name: its RPC queue, Kafka consumer group, inbox consumer, event producer and
metrics label all use it."""
NAME = "payment_service"
