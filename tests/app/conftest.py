"""Fixtures of the app's browser test: the test profile with a broker and a daemon, the app served by
scripts/app.sh (Voila), and Debian's Chromium driven by Selenium through /usr/bin/chromedriver."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")

#: ipywidgets' FileUpload opens the operating system's file dialog from a file input that is never put in
#: the page, and a browser test cannot drive that dialog. This script, run before the page's own, puts such
#: an input into the page (hidden) when it is clicked, marked ``data-test-picker``, instead of opening the
#: dialog; Selenium then gives it the file, which fires the widget's own change handler.
FILE_PICKER_SHIM = """
(() => {
  const nativeClick = HTMLInputElement.prototype.click;
  HTMLInputElement.prototype.click = function () {
    if (this.type !== 'file') { return nativeClick.apply(this, arguments); }
    if (!this.isConnected) { this.style.display = 'none'; document.body.appendChild(this); }
    const marked = document.querySelectorAll('input[data-test-picker]');
    marked.forEach((e) => e.removeAttribute('data-test-picker'));
    this.setAttribute('data-test-picker', '1');
  };
})();
"""


@pytest.fixture(autouse=True)
def no_results_follower_outlives_its_test():
    """The results view's background refresh queries the profile from its own thread: one left running
    after its test would query the profiles of the tests after it, for up to its time limit. Each test
    stops what it started; this checks it."""
    import threading

    yield
    left = [thread for thread in threading.enumerate() if thread.name == "mofmlp-results-follower"]
    for thread in left:
        thread.join(15)
    assert not [thread for thread in left if thread.is_alive()], "a results view still follows its run"


def _environment(**extra: str) -> dict[str, str]:
    """This process' environment with the virtual environment's ``bin`` first on PATH (the daemon runs
    ``verdi`` from PATH) and ``extra`` added."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def _verdi(profile: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    verdi = str(Path(sys.executable).parent / "verdi")
    result = subprocess.run(
        [verdi, "-p", profile, *args], capture_output=True, text=True, timeout=timeout, env=_environment()
    )
    if check and result.returncode != 0:
        pytest.fail(
            f"`verdi -p {profile} {' '.join(args)}` failed:\n{result.stdout}\n{result.stderr[-3000:]}"
        )
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"scripts/app.sh exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Voila did not listen on port {port} within {timeout} s")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def daemon_profile(aiida_profile, finished_al_run):
    """The test profile (holding the finished run) with RabbitMQ as broker; its daemon is started by
    ``scripts/app.sh`` (the app fixture) or, when no app runs, here; stopped at the end of the module.

    Module scope: after the module the daemon is stopped and the profile has no broker again, as the
    other tests expect.
    """
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "broker.sh")], check=True, capture_output=True, timeout=180
    )
    name = aiida_profile.name
    _verdi(name, "profile", "configure-broker", "core.rabbitmq", "-n", "-f", name)
    yield name
    _verdi(name, "daemon", "stop", check=False, timeout=180)
    _verdi(name, "profile", "configure-broker", "none", "-f", name, check=False)


@pytest.fixture
def daemon_verdi(daemon_profile):
    """Run ``verdi -p <test profile> ...`` (no check) with the profile's daemon running; the
    CompletedProcess."""
    if _verdi(daemon_profile, "daemon", "status", check=False).returncode != 0:
        _verdi(daemon_profile, "daemon", "start", "1", timeout=180)
    return lambda *args: _verdi(daemon_profile, *args, check=False)


@pytest.fixture(scope="module")
def app_url(daemon_profile, artifacts_dir, clean_environment):
    """The app started as the README says, ``bash scripts/app.sh``, from a shell where nothing is activated:
    it checks the installation, the broker, the profile and its codes (``aiida-mofmlp setup``), starts the
    profile's daemon and serves the page. The daemon it started must be running once the page is up."""
    port = _free_port()
    env = clean_environment(
        os.environ["AIIDA_PATH"],
        MOFMLP_PROFILE=daemon_profile,
        MOFMLP_APP_PORT=str(port),
        MOFMLP_DAEMON_WORKERS="1",
    )
    log_path = artifacts_dir / "app_sh.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "app.sh")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        try:
            _wait_for_port(port, process, timeout=600)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"{error}; scripts/app.sh said:\n{log_path.read_text()[-4000:]}")
        started = log_path.read_text()
        assert "==> AiiDA daemon of profile" in started, started[-3000:]
        status = _verdi(daemon_profile, "daemon", "status", check=False)
        assert status.returncode == 0, (
            f"scripts/app.sh left no daemon running:\n{status.stdout}{started[-3000:]}"
        )
        urls = re.findall(rf"Open (http://127\.0\.0\.1:{port}/\?token=\S+) in a browser", started)
        assert urls, f"scripts/app.sh printed no URL with a token:\n{started[-3000:]}"
        yield urls[-1]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def browser(artifacts_dir):
    """Headless Chromium (Debian package) through /usr/bin/chromedriver: nothing is downloaded."""
    if not (CHROMEDRIVER.exists() and shutil.which("chromium")):
        pytest.fail("Chromium/chromedriver are not installed: run `bash scripts/browser.sh`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": FILE_PICKER_SHIM})
    driver.set_page_load_timeout(300)
    yield driver
    driver.quit()
