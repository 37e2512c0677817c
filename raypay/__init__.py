"""raypay: the payment service of a ticketing checkout.

Where each kind of code lives (one folder, one layer; imports point inward):

- ``raypay/domain/``: the rules in plain Python, importing nothing of Ray, Redis,
  Kafka or FastAPI: money, orders, reservations and payments, the payment workflow
  and its Idempotency-Key rules, the ports, the error hierarchy, the orderId hash.
- ``raypay/adapters/``: the ports' implementations and other I/O: Redis stores,
  keys and records, the event payload, the gateway simulator, the Kafka sink and
  outbox relay, API keys and rate limits in Redis.
- ``raypay/bootstrap.py``: the composition root that builds them from ``settings.py``.
- ``raypay/tools/``: operator tools: the embedded stack, ``raypay up`` and the CLI,
  the load tool and the benchmark.
- ``actors/`` (beside this package): Ray actors (payment shard, gateway simulator,
  Kafka producer); ``deployments/``: the Ray Serve HTTP ingress.
"""
