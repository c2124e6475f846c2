"""The notifications worker: emails customers when their order is confirmed,
cancelled or refunded, from the order service's events."""
