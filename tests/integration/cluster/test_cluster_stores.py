"""The Redis stores' contract (tests/unit/test_redis_store.py, test_refund_store.py,
test_gateway_sim.py, test_idempotency.py) on a real 3-master Redis Cluster."""

from __future__ import annotations

import pytest
from conftest import in_one_vshard
from unit.test_gateway_sim import (  # noqa: F401
    TestDeclineRate,
    TestGatewayError,
    TestIdempotency,
    TestRefunds,
    TestResolveCharge,
    TestTestCards,
    TestTimeoutCard,
)
from unit.test_redis_store import (  # noqa: F401
    TestBegin,
    TestQueries,
    TestSettle,
    TestUpstreamRecords,
    payments,
)
from unit.test_refund_store import TestBegin as TestRefundBegin  # noqa: F401
from unit.test_refund_store import TestSettle as TestRefundSettle  # noqa: F401
from unit.test_refund_store import (  # noqa: F401
    refunds,
    test_pending_refunds_older_than_a_cutoff_oldest_first,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def one_vshard(monkeypatch: pytest.MonkeyPatch) -> None:
    in_one_vshard(monkeypatch)
