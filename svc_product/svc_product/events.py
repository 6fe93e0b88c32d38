"""The Product service publishes no Kafka events.

Stock moves are the Inventory service's (``StockUpdated``); catalog edits
reach readers through cache invalidation, which the service does itself.
"""
