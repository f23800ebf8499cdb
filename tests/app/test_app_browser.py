"""The app in a real browser: Voila-served, driven by Selenium in Debian's headless Chromium.

A first-time user's path: upload a bad CIF (readable refusal), upload DMOF-1 (RASPA2's ZnBDCdabco.cif),
choose CO2, the fast protocol and the tiny sizes, submit, see the process and its first report lines
(the run is killed then), open a finished run in the results and see its iteration table and a figure.
Screenshots go to tests/app/artifacts/ (and the results page to docs/source/_static/app_results.png).
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "source" / "_static" / "app_results.png"
WAIT = 240  # s; the machine running the tests has 2 busy cores


def _wait(driver, condition, timeout: float = WAIT, what: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition, message=what)


def _css(driver, selector: str, timeout: float = WAIT):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return _wait(driver, ec.presence_of_element_located((By.CSS_SELECTOR, selector)), timeout, selector)


def _text_in(driver, selector: str, pattern: str, timeout: float = WAIT) -> str:
    """Wait until the element ``selector`` shows text matching ``pattern``; its text."""
    from selenium.webdriver.common.by import By

    def _match(drv):
        for element in drv.find_elements(By.CSS_SELECTOR, selector):
            text = element.get_attribute("textContent") or ""
            if re.search(pattern, text):
                return text
        return False

    return _wait(driver, _match, timeout, f"{selector} showing {pattern!r}")


def _open_step(driver, title: str) -> None:
    from selenium.webdriver.common.by import By

    tab = _wait(
        driver,
        lambda drv: next(
            (
                t
                for t in drv.find_elements(By.CSS_SELECTOR, ".lm-TabBar-tab, .p-TabBar-tab")
                if t.text.strip() == title
            ),
            False,
        ),
        60,
        f"tab {title}",
    )
    tab.click()


def _upload(driver, button: str, path: Path) -> None:
    """Click the FileUpload ``button`` and give its file input ``path`` (see FILE_PICKER_SHIM)."""
    _css(driver, button).click()
    _css(driver, "input[data-test-picker]", 30).send_keys(str(path))


def _no_traceback(driver) -> None:
    body = driver.find_element("tag name", "body").text
    assert "Traceback" not in body, body[-2000:]


@pytest.mark.integration
def test_app_needs_its_token(app_url):
    """Without the printed URL's token: no page (the server's login form instead) and no kernel (403)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    base = app_url.split("?")[0]
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as page:
        opener.open(base, timeout=60)
    assert page.value.code == 302 and "/login" in page.value.headers["Location"]
    with pytest.raises(urllib.error.HTTPError) as api:
        opener.open(urllib.request.Request(base + "api/kernels", data=b"{}", method="POST"), timeout=60)
    assert api.value.code == 403
    wrong = base + "?" + urllib.parse.urlencode({"token": "not-the-token"})
    with pytest.raises(urllib.error.HTTPError) as guessed:
        opener.open(wrong, timeout=60)
    assert guessed.value.code == 302
    with opener.open(app_url, timeout=120) as answer:  # the printed URL opens the app
        assert answer.status == 200 and "mofmlp" in answer.read().decode(errors="replace").lower()


@pytest.mark.integration
def test_first_time_user_in_browser(
    app_url, browser, artifacts_dir, raspa_share_dir, finished_al_run, daemon_verdi, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    timings = {}
    start = time.monotonic()
    browser.get(app_url)
    _css(browser, ".mofmlp-footer")
    timings["page_load_s"] = round(time.monotonic() - start, 1)
    _no_traceback(browser)

    # 1. structure: an unreadable CIF is refused in words, then DMOF-1 is accepted
    bad = tmp_path / "broken.cif"
    bad.write_bytes(b"\x00\x01 not a CIF at all \xff")
    _upload(browser, "button.mofmlp-cif-upload", bad)
    _text_in(browser, ".mofmlp-intake-errors", r"broken\.cif was not accepted")
    _no_traceback(browser)
    browser.save_screenshot(str(artifacts_dir / "1_structure_refused.png"))
    cif = raspa_share_dir / "structures" / "cif" / "ZnBDCdabco.cif"
    _upload(browser, "button.mofmlp-cif-upload", cif)
    _text_in(browser, ".mofmlp-structure-summary", r"C22H20N2O8Zn2 \(54 atoms\)")
    _css(browser, ".mofmlp-structure-viewer canvas", 60)
    browser.save_screenshot(str(artifacts_dir / "1_structure.png"))

    # 2. configure: CO2, fast, tiny sizes
    _open_step(browser, "2. Configure")
    Select(_css(browser, ".mofmlp-guest select")).select_by_value("CO2")
    fast = _wait(
        browser,
        lambda drv: next(
            (b for b in drv.find_elements(By.CSS_SELECTOR, ".mofmlp-protocol button") if b.text == "fast"),
            False,
        ),
        60,
    )
    fast.click()
    Select(_css(browser, ".mofmlp-size-preset select")).select_by_visible_text("tiny (2 iterations, tests)")
    _text_in(browser, ".mofmlp-validation", r"Settings are valid")
    # a code that is not in the profile is named, then the right one is restored
    code = _css(browser, ".mofmlp-code-train input")
    right = code.get_attribute("value")
    code.clear()
    code.send_keys("no-such-code@localhost" + Keys.ENTER)
    _text_in(browser, ".mofmlp-validation", r"MACE fine-tuning: code 'no-such-code@localhost' not found")
    browser.save_screenshot(str(artifacts_dir / "2_configure_missing_code.png"))
    _no_traceback(browser)
    code.clear()
    code.send_keys(right + Keys.ENTER)
    browser.save_screenshot(str(artifacts_dir / "2_configure.png"))

    # 3. submit: the run appears in the results step with its first report lines
    _open_step(browser, "3. Submit")
    _text_in(browser, ".mofmlp-submit-blockers", r"Ready to submit")
    start = time.monotonic()
    _css(browser, ".mofmlp-submit-button").click()
    message = _text_in(browser, ".mofmlp-submit-message", r"Submitted ActiveLearningWorkChain<\d+>")
    timings["submit_s"] = round(time.monotonic() - start, 1)
    pk = int(re.search(r"<(\d+)>", message).group(1))
    _text_in(browser, ".mofmlp-results-status", rf"ActiveLearningWorkChain<{pk}>")
    report = _text_in(browser, ".mofmlp-report", r"\d\d:\d\d:\d\d \[\d+\|\w+")
    timings["first_report_line_s"] = round(time.monotonic() - start, 1)
    browser.save_screenshot(str(artifacts_dir / "3_submitted.png"))
    _no_traceback(browser)
    daemon_verdi("process", "kill", "-F", str(pk))  # the tiny run is not waited for

    # 5. runs -> 4. results of the finished run: iteration table and a figure
    _open_step(browser, "5. Runs")
    _text_in(browser, ".mofmlp-runs-table", "ZnBDCdabco")
    wanted = f"<{finished_al_run.pk}>"
    option = _wait(
        browser,
        lambda drv: next(
            (
                o
                for o in drv.find_elements(By.CSS_SELECTOR, ".mofmlp-run-choice option")
                if o.text.startswith(wanted)
            ),
            False,
        ),
        60,
        f"run {wanted} in the runs list",
    )
    Select(_css(browser, ".mofmlp-run-choice select")).select_by_visible_text(option.text)
    start = time.monotonic()
    _css(browser, ".mofmlp-open-run").click()
    _text_in(browser, ".mofmlp-results-status", rf"ActiveLearningWorkChain<{finished_al_run.pk}>")
    table = _css(browser, ".mofmlp-iteration-table")
    rows = finished_al_run.outputs.iterations.get_dict()["rows"]
    assert len(table.find_elements(By.TAG_NAME, "tr")) == len(rows) + 1
    figure = _css(browser, "img.mofmlp-figure")
    _wait(browser, lambda _: figure.get_property("naturalWidth") > 100, 60, "a drawn figure")
    timings["results_s"] = round(time.monotonic() - start, 1)
    _no_traceback(browser)
    browser.execute_script(
        "arguments[0].scrollIntoView({block: 'start'});", _css(browser, ".mofmlp-results-status")
    )
    shot = artifacts_dir / "4_results.png"
    browser.save_screenshot(str(shot))
    DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, DOCS_SCREENSHOT)
    (artifacts_dir / "timings.json").write_text(json.dumps(timings, indent=1))
    print("app timings (s):", timings, "report head:", report[:300], "rows:", len(rows))
