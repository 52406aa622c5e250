"""The README's run command: `diaban demo` seeds Sơn La and prints what to open and who to be."""

import re
import signal
import subprocess

from conftest import DIABAN


def test_the_demo_prints_the_address_and_logins_and_serves_its_data(tmp_path, browser):
    proc = subprocess.Popen([str(DIABAN), "--db", str(tmp_path / "demo.sqlite"), "demo", "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = []
        while not lines or "listening on" not in lines[-1]:
            line = proc.stdout.readline()
            assert line, f"demo ended early: {lines}"
            lines.append(line)
        printed = "".join(lines)
        assert "kiemduyet" in printed and "kiemduyet-2026" in printed and "canbo.muonggion" in printed
        port = re.search(r"listening on http://127\.0\.0\.1:(\d+)", lines[-1]).group(1)

        page = browser.new_page()
        page.goto(f"http://localhost:{port}/login")
        page.fill("#username", "kiemduyet")
        page.fill("#password", "kiemduyet-2026")
        page.click("button[type=submit]")
        page.wait_for_url("**/records")
        rows = page.locator("#records tbody tr").all_inner_texts()
        assert len(rows) == 4
        assert any("Xã Mường Giôn (03694)" in r for r in rows) and any("Xã Sốp Cộp (04231)" in r for r in rows)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
