"""schemathesis hooks (``hooks`` in schemathesis.toml): the ``written_down_refusals`` check.

schemathesis.toml lets ``positive_data_acceptance`` see a schema-valid request answered
402 or 422 on the operations whose rules JSON Schema cannot state; this check then
holds each such answer to the refusals written down there: its operation, status,
problem code and, for a ``validation_error``, the field and type of every error. A
schema-valid request refused for any other reason fails the run, so each exception is a
named rule stricter than the schema, never a loosened check.

Not a test module: schemathesis loads it by path (run from the repository's root), as
a module of no package (so no dataclasses: they look their module up).
"""

from __future__ import annotations

from typing import Any

import schemathesis


class Refusal:
    """One written-down refusal: operation ("POST /v1/payments"), status, the problem
    codes it may carry and, for validation errors, the "field:type" each error may be."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.operation = entry["operation"]
        self.status = int(entry["status"])
        self.codes = tuple(entry.get("codes") or [entry["code"]])
        self.errors = frozenset(entry.get("errors", ()))
        self.reason = entry.get("reason", "")

    def covers(self, operation: str, status: int, problem: dict[str, Any]) -> bool:
        if (operation, status) != (self.operation, self.status):
            return False
        if problem.get("code") not in self.codes:
            return False
        return all(error in self.errors for error in errors_of(problem)) if self.errors else True


def errors_of(problem: dict[str, Any]) -> list[str]:
    """A validation problem's errors as "field:type" (deployments/problems.py)."""
    return [f"{e.get('field')}:{e.get('type')}" for e in problem.get("errors") or ()]


@schemathesis.check
class written_down_refusals:  # noqa: N801 - the check's name in schemathesis.toml
    def __init__(self, refusals: list[dict[str, Any]] | None = None) -> None:
        self.refusals = [Refusal(entry) for entry in refusals or ()]
        self.statuses = {refusal.status for refusal in self.refusals}

    def after_response(self, ctx: Any, response: Any, case: Any) -> bool | None:
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive:
            return None
        if response.status_code not in self.statuses:
            return None
        try:
            problem = response.json()
        except ValueError:
            problem = {}
        operation = case.operation.label
        if any(r.covers(operation, response.status_code, problem) for r in self.refusals):
            return None
        raise AssertionError(
            f"Schema-valid request refused for a reason not written down in "
            f"schemathesis.toml: {operation} {response.status_code} "
            f"{problem.get('code')} {errors_of(problem)}"
        )
