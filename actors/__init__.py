"""Ray actors: the PaymentActor shards, the gateway simulator pool and the Kafka producer.

Actors are wiring: they build their adapters when they start, turn a call into a
domain call and return a plain result. The rules live in ``raypay``.
"""
