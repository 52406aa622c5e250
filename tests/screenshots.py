"""Makes the screenshots under docs/screenshots/ from a demo server, a phone (the Python
binding) and headless Chromium. Run after `bash tests/run.sh` (which builds everything):

    tests/.venv/bin/python tests/screenshots.py
"""

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "target" / "bindings" / "python"))
import diaban  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from test_grid import MONTHLY, month_key  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def post(url, body, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req) as resp:
        return json.loads(resp.read() or b"null")


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
        admin = post(url + "/api/v1/login", {"username": "admin", "password": "quantri-2026", "device_name": "x",
                                              "actor_id": secrets.token_hex(16)})["token"]
        post(url + "/api/v1/admin/templates", MONTHLY, admin)

        import datetime
        today = datetime.date.today()
        months = []
        day = today
        for _ in range(4):
            months.append(month_key(day))
            day = day.replace(day=1) - datetime.timedelta(days=1)
        key = bytes(range(32))
        phones = {}
        for user in ["canbo.muonggion", "canbo.sopcop"]:
            phone = diaban.Device.open(str(tmp / f"{user}.sqlite"), key, url, user)
            phone.login(user, "canbo-2026")
            phones[user] = phone
        for i, period in enumerate(months[1:]):
            r = phones["canbo.muonggion"].create_record("commune_monthly_report", period)
            phones["canbo.muonggion"].set_field(r, "sessions", diaban.FieldValue.INTEGER(3 + i))
            phones["canbo.muonggion"].submit(r)
        r = phones["canbo.sopcop"].create_record("commune_monthly_report", months[1])
        phones["canbo.sopcop"].set_field(r, "sessions", diaban.FieldValue.INTEGER(2))
        for phone in phones.values():
            phone.sync()

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                        args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url + "/login")
            page.fill("#username", "kiemduyet")
            page.fill("#password", "kiemduyet-2026")
            page.click("button[type=submit]")
            page.wait_for_url("**/records")
            page.goto(url + "/grid/commune_monthly_report")
            page.screenshot(path=str(OUT / "grid.png"), clip={"x": 0, "y": 0, "width": 1280, "height": 800})
            page.goto(url + "/records?template=propaganda_session&state=submitted")
            page.click("#records a >> nth=0")
            page.screenshot(path=str(OUT / "record.png"), full_page=True)
            page.fill("#comment", "Đề nghị bổ sung số người tham dự là nữ và hình thức tuyên truyền.")
            page.locator("#review").scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / "return.png"))
            browser.close()
        for phone in phones.values():
            phone.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    print("screenshots written to", OUT)


if __name__ == "__main__":
    main()
