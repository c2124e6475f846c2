"""Integration events: transactional outbox, relay to JetStream, durable consumers
with an inbox. See schema.py, outbox.py, relay.py and consumer.py."""
