"""The load tool behind ``raypay load`` (and the traffic of ``raypay bench``).

plan.py        the scenario: which orders duplicate, decline once, have a reservation;
               when each starts (burst, ramp, rate). Pure and seeded.
client.py      HTTP transport (aiohttp or httpx), 503 retries, one buyer paying an order
runner.py      run_load(): seed → fire → verify; LoadResult
evidence.py    seeding, and reading payments, charges and events back from Redis/Kafka
invariants.py  the checks over those facts. Pure.
stats.py       percentiles, latency summary, status mix. Pure.
report.py, progress.py, plot.py, cli.py   what the user sees
"""
