"""raypay: the payment service of a ticketing checkout.

Where each kind of code lives:

- ``raypay/`` (this package, top level): domain rules in plain Python, no Ray,
  Redis or Kafka imports: money, the order/reservation/payment model, errors,
  the payment workflow, ports and the orderId -> shard hash.
- ``raypay/adapters/``: the ports' implementations (Redis stores and outbox,
  gateway simulator, Kafka sink).
- ``raypay/stack.py`` and ``raypay/cli.py``: the embedded stack and the
  ``raypay`` command.
- ``actors/``: Ray actors (payment shard, gateway simulator, Kafka producer).
- ``deployments/``: the Ray Serve HTTP ingress.
"""
