"""Makes the screenshots under docs/screenshots/ from a demo server and headless Chromium.
Run after `bash tests/run.sh` (which builds everything):

    tests/.venv/bin/python tests/screenshots.py
"""

import os
import re
import signal
import subprocess
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"


def main():
    tmp = Path(tempfile.mkdtemp())
    proc = subprocess.Popen([str(ROOT / "target/debug/diaban"), "--db", str(tmp / "demo.sqlite"), "demo", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = ""
        while "listening on" not in line:
            line = proc.stdout.readline()
        port = re.search(r":(\d+)\s*$", line.strip()).group(1)
        url = f"http://localhost:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url + "/login")
            page.fill("#username", "kiemduyet")
            page.fill("#password", "kiemduyet-2026")
            page.click("button[type=submit]")
            page.wait_for_url(url + "/")
            page.screenshot(path=str(OUT / "home.png"), full_page=True)
            page.goto(url + "/rollup/commune_monthly_report")
            page.screenshot(path=str(OUT / "rollup.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 800})
            page.goto(url + "/records")
            page.screenshot(path=str(OUT / "queue.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 800})
            page.goto(url + "/grid/commune_monthly_report")
            page.screenshot(path=str(OUT / "grid.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 800})
            page.goto(url + "/records?template=propaganda_session&state=submitted")
            page.click("#records a >> nth=0")
            page.screenshot(path=str(OUT / "record.png"), full_page=True)
            page.fill("#comment", "Đề nghị bổ sung số người tham dự là nữ và hình thức tuyên truyền.")
            page.locator("#review").scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / "return.png"))
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    print("screenshots written to", OUT)


if __name__ == "__main__":
    main()
