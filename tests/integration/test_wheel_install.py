"""The wheel the Dockerfile installs, run the way the image runs it: by an unprivileged
user, from a fresh virtual environment and a directory it cannot write, with its own
writable data directory. `serve` (in production, without SMTP) and `beat` both start.

The fresh environment gets the wheel only (`--no-deps --no-index`: nothing is
downloaded); its dependencies come from this test environment's site-packages
through a `.pth` line, which does not bring along this checkout's editable install.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
USER = "fhir-wheel-test"
SYSTEM_PYTHON = Path("/usr/bin/python3")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("runuser") or not SYSTEM_PYTHON.exists(),
        reason="needs root (to create and become an unprivileged user), runuser and "
        "a system python3",
    ),
]


@pytest.fixture(scope="module")
def installed() -> Iterator[tuple[Path, Path]]:
    """(fresh venv's bin dir, a writable data dir owned by the unprivileged user)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", USER], check=True)
    place = Path(tempfile.mkdtemp(prefix="clients-wheel-"))
    try:
        place.chmod(0o755)
        wheels = place / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
             "--wheel-dir", str(wheels), str(ROOT)],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        venv = place / "venv"
        subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
        purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
        fresh = Path(
            subprocess.run(
                [str(venv / "bin" / "python"), "-c", purelib],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
             "--no-deps", "--no-index", *map(str, wheels.glob("*.whl"))],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        (fresh / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
        # The one dependency program the server runs (pip would have installed it here).
        store = venv / "bin" / "nx-27017"
        store.write_text(
            f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom nx_27017.nx_27017 import main\n"
            "sys.exit(main())\n"
        )
        store.chmod(0o755)
        data = place / "data"
        data.mkdir()
        shutil.chown(data, USER, USER)
        yield venv / "bin", data
    finally:
        shutil.rmtree(place, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(
    bin_dir: Path, data: Path, log: Path, *args: str, **env: str
) -> subprocess.Popen[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FHIR_", "VIRTUAL_ENV"))}
    clean.update(FHIR_DATA_DIR=str(data), HOME=str(data), PYTHONUNBUFFERED="1", **env)
    return subprocess.Popen(
        ["runuser", "-u", USER, "--", str(bin_dir / "fhir-server"), *args],
        env=clean,
        cwd=bin_dir,  # root-owned: the server may not write where it is started
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def test_the_wheel_is_not_this_checkout(installed: tuple[Path, Path]) -> None:
    bin_dir, _ = installed
    where = subprocess.run(
        [str(bin_dir / "python"), "-c", "import fhir_server; print(fhir_server.__file__)"],
        check=True, capture_output=True, text=True, cwd=bin_dir,
    ).stdout  # fmt: skip
    assert str(bin_dir.parent) in where and str(ROOT) not in where


def test_serve_starts_as_an_unprivileged_user_and_warns_about_mail(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    bin_dir, data = installed
    port = _free_port()
    log = tmp_path / "serve.log"
    process = _as_user(
        bin_dir, data, log, "serve", "--port", str(port),
        FHIR_ENVIRONMENT="production", FHIR_SECRET_KEY="wheel-test-" + "s" * 40,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        metadata = httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=10)
        assert metadata.status_code == 200
    finally:
        _stop(process)
    printed = log.read_text()
    assert "WARNING: FHIR_SMTP_HOST is not set" in printed
    assert "Traceback" not in printed and "Permission denied" not in printed
    assert all(p.owner() == USER for p in data.iterdir())


def test_beat_starts_as_an_unprivileged_user(installed: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, data = installed
    log = tmp_path / "beat.log"
    process = _as_user(bin_dir, data, log, "beat")
    try:
        deadline = time.monotonic() + 60
        while "beat: Starting" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        time.sleep(2)  # past start-up: the schedule file is opened and written
        assert process.poll() is None, log.read_text()
    finally:
        _stop(process)
    printed = log.read_text()
    assert "Traceback" not in printed and "Permission denied" not in printed
    assert any(p.name.startswith("celerybeat-schedule") for p in data.iterdir())
