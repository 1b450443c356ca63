"""The console's main story in a real browser (headless Chromium, Debian's chromium and
chromium-driver), against a real gateway: a bank analyst applies; the PSB officer co-signs; the
bureau approves; the analyst previews and runs a query and downloads the CSV; the PSB officer
suspends the dataset and the analyst sees why the next query is refused; the merchant drafts a
product on the twin; the bureau records the agreement it stands on and publishes it; the analyst
invokes it; the bureau verifies the audit chain. Every page is screenshot into tests/artifacts/
and checked with axe-core (from the npm registry, installed at test time) and with tests/a11y.py."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.a11y import problems
from tests.console_support import demo_users
from tests.support import Gateway, demo_gateway

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
AXE_VERSION = "4"

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[test]')")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support import expected_conditions as until  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def axe_source(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    """axe-core from the npm registry; None (and the Python checker alone) where npm cannot fetch it."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    folder = tmp_path_factory.mktemp("axe")
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(folder),
                           f"axe-core@{AXE_VERSION}"], capture_output=True, timeout=300)
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    return script.read_text(encoding="utf-8") if done.returncode == 0 and script.exists() else None


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Iterator[Gateway]:
    state = tmp_path_factory.mktemp("console-browser")
    g = demo_gateway(state, demo_data).start()
    yield g
    g.stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=zh-CN",
                "--window-size=1280,1000"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": "zh-CN,zh",
                                              "download.default_directory": str(tmp_path)})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    yield driver
    driver.quit()


class Story:
    """One browser walking through the console; each page screenshot and checked."""

    def __init__(self, driver: WebDriver, gw: Gateway, axe: str | None, downloads: Path) -> None:
        self.driver, self.gw, self.axe, self.downloads = driver, gw, axe, downloads
        self.shots = 0
        self.wait = WebDriverWait(driver, 60)

    def open(self, path: str) -> None:
        self.driver.get(self.gw.base + path)

    def find(self, selector: str) -> Any:
        return self.wait.until(until.presence_of_element_located((By.CSS_SELECTOR, selector)))

    def page(self, name: str) -> str:
        """Screenshot the page and check it; returns its text."""
        self.shots += 1
        ARTIFACTS.mkdir(exist_ok=True)
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(1280, min(max(int(height), 800), 4000))  # the whole page in the shot
        self.driver.save_screenshot(str(ARTIFACTS / f"console-{self.shots:02d}-{name}.png"))
        source = self.driver.page_source
        assert problems(source) == [], (name, problems(source))
        if self.axe is not None:
            self.driver.execute_script(self.axe)
            found = self.driver.execute_async_script(
                "const done = arguments[arguments.length - 1];"
                "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa']}).then(r => done(r.violations.map("
                "v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))));")
            assert found == [], (name, found)
        text: str = self.driver.find_element(By.TAG_NAME, "body").text
        return text

    def submit(self, button: str) -> None:
        self.find(button).click()
        self.wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def sign_in(self, username: str) -> None:
        """With the keyboard only: type, Tab to the next field, Enter to send."""
        self.open("/console/login")
        field = self.find("#username")
        field.send_keys(username, Keys.TAB)
        active = self.driver.switch_to.active_element
        assert active.get_attribute("id") == "password"
        active.send_keys(demo_users(self.gw.state_dir)[username]["password"], Keys.ENTER)
        self.wait.until(lambda d: "/console/login" not in d.current_url)

    def sign_out(self) -> None:
        self.submit("form[action='/console/logout'] button")
        self.wait.until(lambda d: "/console/login" in d.current_url)

    def type_into(self, selector: str, text: str) -> None:
        element = self.find(selector)
        element.clear()
        element.send_keys(text)

    def downloaded(self, suffix: str) -> Path:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = [p for p in self.downloads.glob(f"*{suffix}") if p.stat().st_size > 0]
            if found:
                return found[0]
            time.sleep(0.2)
        raise AssertionError(f"no {suffix} file was downloaded")


@pytest.mark.slow  # about 100 s: a gateway, a browser and 22 pages, each checked with axe-core
def test_the_main_story_in_a_real_browser(browser: WebDriver, gw: Gateway, axe_source: str | None,
                                          tmp_path: Path) -> None:
    s = Story(browser, gw, axe_source, tmp_path)
    if axe_source is not None:  # the checker itself sees a broken page
        browser.get("data:text/html,<html><body><img src=x></body></html>")
        browser.execute_script(axe_source)
        seen = browser.execute_async_script("const done = arguments[arguments.length - 1];"
                                            "axe.run(document).then(r => done(r.violations.map(v => v.id)));")
        assert "image-alt" in seen

    # The sign-in page, in Chinese by default.
    s.open("/console/login")
    assert "登录" in s.page("login")

    # 1. The bank's analyst applies for vehicles (no grant yet). With the keyboard, the first
    # stop on a page is the link that skips the menu.
    s.sign_in("bank-analyst")
    assert "数据目录" in s.page("requester-catalog")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element.get_attribute("class") == "skip"
    s.open("/console/applications")
    Select(s.find("#target")).select_by_value("dataset:vehicles")
    s.type_into("#purpose", "按乡镇为车贷捆绑车险定价")
    s.type_into("#epsilon_per_period", "8")
    s.submit("form[action='/console/applications'] button[type=submit]")
    assert "待处理" in s.page("requester-applied")
    s.sign_out()

    # 2. The PSB officer co-signs.
    s.sign_in("psb-officer")
    s.open("/console/applications/cosign")
    s.page("source-cosign-queue")
    s.submit("button[id^='cosign-app-']")
    assert "已会签" in s.page("source-cosigned")
    s.sign_out()

    # 3. The bureau approves.
    s.sign_in("bureau-admin")
    assert "正在触发的告警" in s.page("bureau-dashboard")
    s.open("/console/applications/review")
    s.submit("button[id^='approve-app-']")
    s.page("bureau-approved")
    s.sign_out()

    # 4. The analyst previews, runs and downloads the CSV.
    s.sign_in("bank-analyst")
    s.open("/console/workbench?dataset=vehicles")
    s.type_into("#sql", "SELECT vehicle_type, COUNT(*) AS n, AVG(value) AS mean_value FROM vehicles "
                        "GROUP BY vehicle_type")
    s.type_into("#epsilon", "1")
    s.submit("#query-form button[type=submit]:not([formaction])")
    preview = s.page("requester-preview")
    assert "预览：尚未消耗任何预算" in preview and "8.000 / 8.000" in preview
    s.submit("#query-form button[formaction='/console/workbench/run']")
    answer = s.page("requester-answer")
    assert "7.000 / 8.000" in answer
    assert browser.find_elements(By.CSS_SELECTOR, "svg.chart .interval")
    s.submit("#download-csv")
    rows = list(csv.reader(io.StringIO(s.downloaded(".csv").read_text(encoding="utf-8-sig"))))
    assert rows[0][:3] == ["vehicle_type", "n", "mean_value"] and len(rows) == 8
    s.open("/console/budget")
    assert "vehicles" in s.page("requester-budget")
    s.sign_out()

    # 5. The PSB officer suspends vehicles, saying why, after a confirmation of what stops.
    s.sign_in("psb-officer")
    s.open("/console/datasets")
    s.page("source-datasets")
    s.find("#suspend-vehicles").click()
    assert "此操作的影响" in s.page("source-confirm-suspend")
    s.type_into("#reason", "车辆登记数据正在核查")
    s.submit("#confirm-status")
    assert "已暂停" in s.page("source-suspended")
    s.sign_out()

    # 6. The analyst's next query is refused, and the page says why.
    s.sign_in("bank-analyst")
    s.open("/console/workbench?dataset=vehicles")
    s.type_into("#sql", "SELECT COUNT(*) AS n FROM vehicles")
    s.submit("#query-form button[formaction='/console/workbench/run']")
    refused = s.page("requester-refused")
    assert "车辆登记数据正在核查" in refused and "已被数源部门或数据局暂停" in refused
    s.sign_out()

    # 7. The merchant drafts a product, tries it on the twin and submits it.
    s.sign_in("merchant-dev")
    s.open("/console/products/new")
    s.type_into("#p-id", "firms-by-industry")
    Select(s.find("#p-dataset")).select_by_value("enterprises")
    s.type_into("#p-title", "乡镇分行业企业数")
    s.type_into("#p-sql", "SELECT industry, COUNT(*) AS firms FROM enterprises WHERE township = :township "
                          "GROUP BY industry")
    s.type_into("#p-parameters", '[{"name": "township", "type": "string", "example": "Lingxi"}]')
    s.type_into("#p-price", "6.50")
    s.page("merchant-draft-form")
    s.submit("form[action='/console/products'] button[type=submit]")
    s.submit("#try-1")
    assert "合成孪生数据" in s.page("merchant-twin")
    s.submit("#submit-1")
    assert "已提交审核" in s.page("merchant-submitted")
    s.sign_out()

    # 8. The bureau records the authorisation agreement the new product stands on, and publishes it.
    s.sign_in("bureau-admin")
    s.open("/console/agreements")
    s.type_into("#agr-body", "县人民政府")
    s.type_into("#agr-operator", "县数据集团")
    s.find("input[name=datasets][value=enterprises]").click()
    s.type_into("#agr-products", "firms-by-industry")
    for field, day in (("#agr-start", "2026-01-01"), ("#agr-end", "2030-12-31")):  # the picker's own format aside
        s.driver.execute_script("arguments[0].value = arguments[1]", s.find(field), day)
    s.type_into("#agr-duties", "仅输出差分隐私统计结果")
    s.type_into("#agr-exit", "协议终止时停止全部服务")
    s.type_into("#agr-sha", "ab" * 32)
    s.submit("form[action='/console/agreements'] button[type=submit]")
    assert "firms-by-industry" in s.page("bureau-agreement-recorded")
    s.open("/console/products/review")
    s.page("bureau-product-review")
    s.submit("#publish-firms-by-industry")
    s.sign_out()

    # 9. The analyst invokes it.
    s.sign_in("bank-analyst")
    s.open("/console/market")
    s.page("requester-market")
    s.submit("#invoke-button-firms-by-industry")
    invoked = s.page("requester-invoked")
    assert "firms-by-industry" in invoked and "¥6.50" in invoked
    s.sign_out()

    # 10. The bureau verifies the audit chain, which holds every step above.
    s.sign_in("bureau-admin")
    s.open("/console/audit")
    s.submit("#verify-chain")
    assert "哈希链完好" in s.page("bureau-audit-verified")
    s.open("/console/audit?kind=console.action")
    log = s.page("bureau-audit-console-actions")
    for who in ("user:bank-analyst", "user:psb-officer", "user:bureau-admin", "user:merchant-dev"):
        assert who in log
