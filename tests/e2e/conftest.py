"""Fixtures for end-to-end tests: a real `diaban` server process on a loopback port,
its admin subcommands, devices through the generated Python binding, and Chromium."""

import datetime
import json
import os
import re
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIABAN = ROOT / "target" / "debug" / "diaban"

import diaban  # the binding, pip-installed from bindings/python by tests/run.sh


class StaticKey(diaban.KeyProvider):
    """The host's key provider; a phone app reads the key from the Android Keystore or the
    iOS Keychain instead."""

    def __init__(self, key: bytes):
        self.key = key
        self.calls = 0

    def store_key(self) -> bytes:
        self.calls += 1
        return self.key


def today() -> datetime.date:
    """Today in Vietnam as the servers and phones of the tests see it: the system clock, or the
    day `DIABAN_CLOCK` pins it to (the test command runs the date-sensitive tests on a spread
    of pinned dates; the servers and the binding read the same variable)."""
    pinned = os.environ.get("DIABAN_CLOCK", "").strip()
    vietnam = datetime.timezone(datetime.timedelta(hours=7))
    if not pinned:
        return datetime.datetime.now(vietnam).date()
    if len(pinned) == 10:
        return datetime.date.fromisoformat(pinned)
    return datetime.datetime.fromisoformat(pinned.replace("Z", "+00:00")).astimezone(vietnam).date()


def days_ago(n: int) -> str:
    """The date `n` days before today, as `YYYY-MM-DD`."""
    return (today() - datetime.timedelta(days=n)).isoformat()


# The device store key a phone app would keep in the Android Keystore / iOS Keychain.
KEY = StaticKey(bytes(range(32)))


class TestCA:
    __test__ = False  # a helper, not a test class
    """A certificate authority made at test time (ECDSA P-256, with openssl) and a server
    certificate it signed for `localhost` and 127.0.0.1: the phone trusts the authority's
    root (`root_pem`) and may pin the server's public key (`pin`)."""

    def __init__(self, directory: Path, names=("localhost",)):
        directory.mkdir(parents=True, exist_ok=True)
        self.cert, self.key = directory / "server.crt", directory / "server.key"
        ca_cert, ca_key = directory / "ca.crt", directory / "ca.key"
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)
        run("req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "2",
            "-subj", "/CN=Dia ban test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
        csr = directory / "server.csr"
        run("req", *ec, "-keyout", str(self.key), "-out", str(csr), "-subj", "/CN=" + names[0])
        extensions = directory / "server.ext"
        sans = ",".join([f"DNS:{n}" for n in names] + ["IP:127.0.0.1"])
        extensions.write_text(f"subjectAltName={sans}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
            "-out", str(self.cert), "-days", "2", "-extfile", str(extensions))
        self.root_pem = ca_cert.read_text()
        public = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-pubkey", "-noout"],
                                check=True, capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=public,
                             check=True, capture_output=True).stdout
        import hashlib
        self.pin = hashlib.sha256(der).hexdigest()
        self.context = ssl.create_default_context(cafile=str(ca_cert))


class Server:
    """A `diaban serve` process with its own SQLite file; over its own HTTPS with `tls`."""

    def __init__(self, db: Path, tls: TestCA | None = None):
        self.db = db
        self.proc = None
        self.port = 0
        self.tls = tls

    def admin(self, *args: str) -> str:
        out = subprocess.run(
            [str(DIABAN), "--db", str(self.db), "admin", *args],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def start(self) -> "Server":
        tls = ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)] if self.tls else []
        self.proc = subprocess.Popen(
            [str(DIABAN), "--db", str(self.db), "serve", "--listen", f"127.0.0.1:{self.port}", *tls],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.proc.stdout.readline()
        match = re.search(r"listening on https?://127\.0\.0\.1:(\d+)", line)
        assert match, f"server did not start: {line!r}"
        self.port = int(match.group(1))
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None

    @property
    def url(self) -> str:
        # `localhost` rather than 127.0.0.1: browsers keep Secure cookies there over plain HTTP.
        return f"{'https' if self.tls else 'http'}://localhost:{self.port}"

    def phone(self, path, name: str):
        """A phone for this server, trusting its test authority when it speaks HTTPS."""
        device = diaban.Device.open(str(path), KEY, self.url, name)
        if self.tls:
            device.set_tls([], self.tls.root_pem)
        return device

    def post(self, path: str, body: bytes, headers=None):
        """POST raw bytes; returns (status, parsed JSON body)."""
        req = urllib.request.Request(self.url + path, data=body, method="POST",
                                     headers={"content-type": "application/json", **(headers or {})})
        return _send(req, self.tls)

    def token(self, username: str, password: str) -> str:
        """A bearer token for API calls (registers a throwaway device)."""
        import secrets
        body = {"username": username, "password": password, "device_name": "api", "actor_id": secrets.token_hex(16)}
        status, answer = self.post("/api/v1/login", json.dumps(body).encode())
        assert status == 200, answer
        return answer["token"]

    def publish(self, template: dict, token: str):
        return self.post("/api/v1/admin/templates", json.dumps(template).encode(),
                         {"authorization": "Bearer " + token})

    def get(self, path: str, headers=None):
        return _send(urllib.request.Request(self.url + path, headers=headers or {}), self.tls)


def _send(req, tls=None):
    try:
        with urllib.request.urlopen(req, timeout=30, context=tls.context if tls else None) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def _province(s: Server) -> Server:
    """The test province: Sơn La with two communes and their officers, a lead, a reviewer and
    an admin."""
    s.admin("create-unit", "--code", "14", "--name", "Tỉnh Sơn La", "--level", "province")
    s.admin("create-unit", "--code", "03694", "--name", "Xã Mường Giôn", "--level", "commune", "--parent", "14")
    s.admin("create-unit", "--code", "04231", "--name", "Xã Sốp Cộp", "--level", "commune", "--parent", "14")
    s.admin("create-user", "--username", "canbo.muonggion", "--password", "canbo-mat-khau",
            "--role", "field_officer", "--unit", "03694", "--name", "Lò Văn Cơ Sở")
    s.admin("create-user", "--username", "canbo.sopcop", "--password", "canbo-mat-khau",
            "--role", "field_officer", "--unit", "04231", "--name", "Cầm Thị Bôm")
    s.admin("create-user", "--username", "kiemduyet.sonla", "--password", "kiemduyet-mat-khau",
            "--role", "reviewer", "--unit", "14", "--name", "Hoàng Thị Thẩm Định")
    s.admin("create-user", "--username", "canbo2.muonggion", "--password", "canbo-mat-khau",
            "--role", "field_officer", "--unit", "03694", "--name", "Quàng Văn Hai")
    s.admin("create-user", "--username", "lanhdao.muonggion", "--password", "lanhdao-mat-khau",
            "--role", "commune_lead", "--unit", "03694", "--name", "Cầm Văn Lãnh")
    s.admin("create-user", "--username", "quantri", "--password", "quantri-mat-khau",
            "--role", "admin", "--unit", "14", "--name", "Quản trị")
    return s.start()


@pytest.fixture
def server(tmp_path):
    s = _province(Server(tmp_path / "server.sqlite"))
    yield s
    s.stop()


@pytest.fixture
def https_server(tmp_path):
    """The test province's server on its own HTTPS, with a test authority made now."""
    s = _province(Server(tmp_path / "server.sqlite", TestCA(tmp_path / "tls")))
    yield s
    s.stop()


@pytest.fixture
def device_path(tmp_path):
    return str(tmp_path / "phone.sqlite")


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


class Phones:
    """Two officers' phones in the same commune, with `template` published first."""

    def __init__(self, server: Server, tmp_path, template=None):
        if template is not None:
            assert server.publish(template, server.token("quantri", "quantri-mat-khau"))[0] == 201
        self.a = diaban.Device.open(str(tmp_path / "a.sqlite"), KEY, server.url, "Điện thoại A")
        self.b = diaban.Device.open(str(tmp_path / "b.sqlite"), KEY, server.url, "Điện thoại B")
        self.a.login("canbo.muonggion", "canbo-mat-khau")
        self.b.login("canbo2.muonggion", "canbo-mat-khau")

    def close(self):
        self.a.close_store()
        self.b.close_store()


def signed_in(browser, server: Server, username="kiemduyet.sonla", password="kiemduyet-mat-khau"):
    """A browser page signed in to the review web UI."""
    page = browser.new_page()
    page.goto(server.url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
    page.goto(server.url + "/records")
    return page



def fill_session(phone, record, place="Nhà văn hóa bản Nà Sản"):
    """Answers every required field of a propaganda session (the pack template)."""
    phone.set_field(record, "session_date", diaban.FieldValue.DATE(days_ago(3)))
    phone.set_field(record, "place", diaban.FieldValue.TEXT(place))
    phone.set_field(record, "audience_group", diaban.FieldValue.CHOICE("youth"))
    phone.set_field(record, "participants", diaban.FieldValue.INTEGER(57))


class Reviewer:
    """A province reviewer using the review web UI over plain HTTP (forms, session cookie,
    CSRF token), as a browser would; for tests that are about the phone, not the page."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self, server: Server, username="kiemduyet.sonla", password="kiemduyet-mat-khau"):
        import urllib.parse

        self.server = server
        handlers = [self._NoRedirect()]
        if server.tls:
            handlers.append(urllib.request.HTTPSHandler(context=server.tls.context))
        self.opener = urllib.request.build_opener(*handlers)
        body = urllib.parse.urlencode({"username": username, "password": password}).encode()
        status, headers, _ = self._send("/login", body)
        assert status == 303, status
        self.cookie = headers["set-cookie"].split(";")[0]

    def _send(self, path: str, body: bytes | None = None):
        headers = {"cookie": self.cookie} if hasattr(self, "cookie") else {}
        if body is not None:
            headers["content-type"] = "application/x-www-form-urlencoded"
        req = urllib.request.Request(self.server.url + path, data=body, headers=headers)
        try:
            with self.opener.open(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read().decode()

    def review(self, record_id: str, action: str, comment: str = "") -> None:
        """`return` (with a comment), `approve` or `sign_off`, from the record's page."""
        import urllib.parse

        status, _, page = self._send(f"/records/{record_id}")
        assert status == 200, status
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({"csrf": csrf, "action": action, "comment": comment}).encode()
        status, _, page = self._send(f"/records/{record_id}/review", body)
        assert status == 303, (status, page)
