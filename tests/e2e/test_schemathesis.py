"""schemathesis, a fuzzer nobody here wrote, against the live app: 0 failures.

The command a user runs (README, "Fuzzing"), with the repository's schemathesis.toml:
every phase (examples, coverage, fuzzing, stateful), every check, the written-down
refusals of tests/e2e/written_down.py. Its summary is printed (``pytest -s`` shows it);
a failure shows the whole output. The HAR it records shows the stateful phase followed
the links: only an order seeded through POST /v1/admin/orders can be paid.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
PHASES = "examples,coverage,fuzzing,stateful"


async def run_schemathesis(base_url: str, api_key: str, har: Path) -> tuple[int, str]:
    command = [
        sys.executable, "-m", "schemathesis.cli", "--no-color",
        "--config-file", str(ROOT / "schemathesis.toml"),
        "run", f"{base_url}/openapi.json", "--phases", PHASES, "--checks", "all",
        "--report", "har", "--report-har-path", str(har),
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,  # the config names its hooks file from here
        env={**os.environ, "RAYPAY_API_KEY": api_key},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


def summary(output: str) -> str:
    """The phases' lines and the summary: what the closing note of a run quotes."""
    start = output.find("Schemathesis v")
    end = output.find("=" * 10)
    phases = output[start:end].strip() if start >= 0 else ""
    tail = output[output.rfind(" SUMMARY ") - 40 :] if " SUMMARY " in output else output[-3000:]
    return f"{phases}\n...\n{tail.strip()}"


def payments_followed(har: Path) -> tuple[int, int]:
    """(payments made, payments of those read back by id) in the recorded requests."""
    made: set[str] = set()
    read: set[str] = set()
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        path = re.sub(r"^https?://[^/]+", "", request["url"]).split("?")[0]
        if request["method"] == "POST" and path == "/v1/payments" and response["status"] == 201:
            made.add(json.loads(response["content"]["text"])["paymentId"])
        found = re.fullmatch(r"/v1/payments/([^/]+)", path)
        if request["method"] == "GET" and found and response["status"] == 200:
            read.add(found.group(1))
    return len(made), len(made & read)


async def test_schemathesis_finds_nothing(service: Any, tmp_path: Path) -> None:
    har = tmp_path / "schemathesis.har"
    started = time.monotonic()
    code, output = await run_schemathesis(service.base_url, service.api_key, har)
    seconds = time.monotonic() - started

    print(f"\n{summary(output)}\n(schemathesis ran {seconds:.0f} s)")
    assert code == 0, output
    verdict = [line for line in output.splitlines() if line.startswith("=") and " in " in line]
    assert verdict and not re.search(r"failure|error", verdict[-1]), output
    made, followed = payments_followed(har)
    print(f"payments made: {made}, of them read back through the links: {followed}")
    # Random order ids never exist: a payment is made only by following the links from
    # seeding an order (POST /v1/admin/orders) to paying it.
    assert made >= 1, "the stateful phase never paid an order it seeded"
