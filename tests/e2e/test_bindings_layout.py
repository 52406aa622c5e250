"""The three generated bindings describe the same API, and the Swift package (which no Linux
machine can build) fits the sources generated for it. Swift is only checked here, statically."""

import re

import diaban
from conftest import ROOT

SWIFT = ROOT / "target" / "bindings" / "swift"
KOTLIN = ROOT / "target" / "bindings" / "kotlin" / "vn" / "diaban" / "diaban.kt"
PACKAGE = ROOT / "bindings" / "swift"


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def protocol_methods(source: str, protocol: str) -> set[str]:
    body = source.split(f"public protocol {protocol}", 1)[1].split("\n}", 1)[0]
    return set(re.findall(r"^\s*func (\w+)\(", body, re.M))


def test_device_has_the_same_methods_in_python_kotlin_and_swift():
    python = {m for m in dir(diaban.Device) if not m.startswith("_") and callable(getattr(diaban.Device, m))}
    python -= {"open", "open_with_pin"}  # the constructors
    swift = {snake(m) for m in protocol_methods((SWIFT / "Diaban.swift").read_text(), "DeviceProtocol")}
    kotlin_body = KOTLIN.read_text().split("public interface DeviceInterface", 1)[1].split("\n}", 1)[0]
    kotlin = {snake(m) for m in re.findall(r"fun `(\w+)`\(", kotlin_body)}
    assert {"sync_async", "close_store", "resolve_conflict", "quarantined", "search", "login"} <= python
    assert python == swift == kotlin


def test_the_swift_package_names_the_generated_module_and_its_ffi():
    package = (PACKAGE / "Package.swift").read_text()
    assert '.binaryTarget(name: "DiabanFFI"' in package
    assert '.target(name: "Diaban", dependencies: ["DiabanFFI"], path: "Sources/Diaban")' in package
    assert "import DiabanFFI" in (SWIFT / "Diaban.swift").read_text()
    assert (SWIFT / "DiabanFFI.modulemap").read_text().startswith("module DiabanFFI {")
    assert (SWIFT / "DiabanFFI.h").exists()


def test_the_swift_tests_call_only_what_the_generated_api_declares():
    generated = (SWIFT / "Diaban.swift").read_text()
    declared = set(re.findall(r"func `?(\w+)`?\(", generated))
    tests = (PACKAGE / "Tests" / "DiabanTests" / "DiabanTests.swift").read_text()
    called = set(re.findall(r"device\.(\w+)\(", tests)) | set(re.findall(r"Device\.(\w+)\(", tests))
    assert called and called <= declared, called - declared
    for case in re.findall(r"DiabanError\.(\w+)", tests):
        assert re.search(rf"case {case}\(", generated), case
