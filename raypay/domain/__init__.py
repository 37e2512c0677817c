"""The domain: money, orders, reservations, payments, the workflow, its ports and errors.

Plain Python: nothing here imports Ray, Redis, Kafka, FastAPI or pydantic
(import-linter checks it, see pyproject.toml).
"""
