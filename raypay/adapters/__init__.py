"""Adapters: the ports' implementations (Redis stores and outbox, gateway simulator, Kafka sink)."""
