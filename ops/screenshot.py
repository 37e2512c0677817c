"""Screenshots of the Ray dashboard of a running raypay, for the README.

    pip install -e '.[screenshot]'          # Playwright, driving the system's Chromium
    apt-get install chromium                 # or point --chromium at another build
    raypay up &  raypay load --payments 20000 --concurrency 200 &
    python ops/screenshot.py docs/img         # while the load runs

Ray's dashboard asks for the cluster's token (``ray get-auth-token``): the script signs
in through the dashboard's own ``/api/authenticate``, which sets the session cookie.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from raypay.tools.up import find_stack

PAGES = {
    "dashboard-serve.png": "#/serve",
    "dashboard-actors.png": "#/actors",
}


def ray_token() -> str:
    ray = Path(sys.executable).with_name("ray")  # the CLI of this environment's Ray
    out = subprocess.run([ray, "get-auth-token"], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--dashboard", help="default: the stack `raypay up` runs")
    parser.add_argument("--data-dir", type=Path, default=Path(".raypay"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--settle-ms", type=int, default=6000, help="wait for the page's data")
    args = parser.parse_args()
    dashboard = args.dashboard or (find_stack(args.data_dir) or {}).get("dashboard_url")
    if not dashboard:
        sys.exit("no dashboard: start `raypay up` or pass --dashboard")
    args.folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        signed_in = page.request.post(
            f"{dashboard}/api/authenticate", headers={"Authorization": f"Bearer {ray_token()}"}
        )
        if not signed_in.ok:
            sys.exit(f"dashboard sign-in failed: {signed_in.status} {signed_in.text()}")
        for name, fragment in PAGES.items():
            page.goto(f"{dashboard}/{fragment}")
            page.wait_for_timeout(args.settle_ms)
            page.screenshot(path=args.folder / name)
            print(args.folder / name)
        browser.close()


if __name__ == "__main__":
    main()
