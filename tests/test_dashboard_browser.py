"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromedriver``, driven
by Selenium), served by ``dashboard_server`` on real Redis: every page loads without any
script, an errored task is retried through the forms, and markup in a task's arguments and
error is shown as text.

scripts/test installs chromium when it is missing and sets $TYPEDTIGER_REQUIRE_BROWSER, so
these tests fail there without a browser; a plain pytest run skips them.
With $TYPEDTIGER_SCREENSHOTS set to a folder, the queues page and a task page are saved there
(docs/images holds the ones the docs show).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from tests import dashboard_tasks
from tests.conftest import run_worker
from typedtiger import Config, Task, TaskState, Tiger
from typedtiger.backends.redis import RedisBackend
from typedtiger.dashboard import Dashboard, allow_all
from typedtiger.dashboard.server import dashboard_server

pytestmark = [pytest.mark.redis, pytest.mark.timeout(180)]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _missing_browser(message: str) -> None:
    if os.environ.get("TYPEDTIGER_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        _missing_browser("needs Debian's chromium and chromium-driver (apt-get install them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # (root in a container has no user namespace for the sandbox)
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
    ):
        options.add_argument(argument)
    try:
        driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    except WebDriverException as exc:
        _missing_browser(f"chromium did not start: {exc.msg}")
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def tiger(redis_db: redis.Redis[str]) -> Tiger:
    tiger = Tiger(RedisBackend(redis_db), Config(allowed_task_modules=("tests",)))
    tiger.adopt(dashboard_tasks.tiger)
    return tiger


@pytest.fixture
def site(tiger: Tiger) -> Iterator[str]:
    """The dashboard served on a free loopback port; its root URL."""
    server = dashboard_server(Dashboard(tiger, auth=allow_all), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)
    server.server_close()


def errored(tiger: Tiger, message: str) -> Task:
    task = tiger.enqueue(dashboard_tasks.fail_with.spec(message).evolve(retry=False))
    run_worker(tiger, queues=["dash"])
    return Task.from_id(tiger, "dash", TaskState.ERROR, task.id)


def follow(browser: webdriver.Chrome, by: str, value: str) -> None:
    """Click what leads to another page and wait for that page (read at once, the old page
    could still be the one shown)."""
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(by, value).click()
    WebDriverWait(browser, 10).until(expected_conditions.staleness_of(page))


def heading(browser: webdriver.Chrome) -> str:
    return browser.find_element(By.TAG_NAME, "h1").text


def test_every_page_loads_without_a_script(
    browser: webdriver.Chrome, site: str, tiger: Tiger
) -> None:
    task = errored(tiger, "boom")
    tiger.enqueue(dashboard_tasks.noop.spec(1))
    run_worker(tiger, queues=["dash.periodic"])  # (schedules the periodic task's first run)
    pages = {
        "/": "Queues",
        "/tasks?queue=dash&state=error": "Queues / dash / error",
        f"/task?id={task.id}": f"Task {task.id}",
        "/workers": "Workers",
        "/periodic": "Periodic tasks",
        "/locks": "Locks held",
    }
    for path, title in pages.items():
        browser.get(site + path)
        assert heading(browser) == title, path
        assert browser.title.endswith("typedtiger"), path
        assert browser.find_elements(By.TAG_NAME, "script") == [], path
    browser.get(site + "/periodic")
    assert "tests.dashboard_tasks:every_ten_minutes" in browser.page_source


def test_an_errored_task_is_retried_through_the_forms(
    browser: webdriver.Chrome, site: str, tiger: Tiger
) -> None:
    task = errored(tiger, "try me again")
    browser.get(f"{site}/tasks?queue=dash&state=error")
    follow(browser, By.LINK_TEXT, task.id[:12])
    follow(browser, By.LINK_TEXT, "Retry")
    assert heading(browser) == "Retry?"
    assert tiger.get_queue_sizes("dash", with_errors=True)[TaskState.ERROR] == 1  # (asked only)
    follow(browser, By.CSS_SELECTOR, "form.confirm button[type=submit]")
    assert browser.find_element(By.CSS_SELECTOR, ".message").text == "The task is queued again."
    assert browser.find_element(By.CSS_SELECTOR, ".state").text == "queued"
    assert Task.from_id(tiger, "dash", TaskState.QUEUED, task.id).id == task.id
    browser.get(site + "/")
    row = browser.find_element(By.XPATH, "//tr[th[text()='dash']]")
    assert [cell.text for cell in row.find_elements(By.TAG_NAME, "td")][:4] == ["1", "0", "0", "0"]


def test_markup_in_a_task_is_shown_as_text(
    browser: webdriver.Chrome, site: str, tiger: Tiger
) -> None:
    task = errored(tiger, dashboard_tasks.MARKUP)
    browser.get(f"{site}/task?id={task.id}")
    assert browser.title == f"Task {task.id[:12]} · typedtiger"  # (the script did not run)
    call = browser.find_element(By.CSS_SELECTOR, "dd.args").text
    assert call == f"fail_with({dashboard_tasks.MARKUP!r})"
    error = browser.find_element(By.CSS_SELECTOR, ".execution .error").text
    assert error == f"builtins:ValueError: {dashboard_tasks.MARKUP}"
    assert browser.find_elements(By.CSS_SELECTOR, "main b") == []
    browser.get(f"{site}/tasks?queue=dash&state=error")
    assert dashboard_tasks.MARKUP in browser.find_element(By.CSS_SELECTOR, "td.error").text


def test_screenshots(browser: webdriver.Chrome, site: str, tiger: Tiger) -> None:
    """The pictures docs/observability.md shows (saved only with $TYPEDTIGER_SCREENSHOTS)."""
    folder = os.environ.get("TYPEDTIGER_SCREENSHOTS")
    task = errored(tiger, "connection refused by smtp.example.com:25")
    for number in range(3):
        tiger.enqueue(dashboard_tasks.noop.spec(number))
        tiger.enqueue(dashboard_tasks.noop.spec(number).evolve(queue="email"))
    tiger.set_queue_system_lock("email", 900)
    run_worker(tiger, queues=["dash.periodic"])
    shots = {
        "dashboard-queues.png": ("/", 520),
        "dashboard-task.png": (f"/task?id={task.id}", 1180),
    }
    for name, (path, height) in shots.items():
        browser.set_window_size(1280, height)
        browser.get(site + path)
        picture = browser.get_screenshot_as_png()
        assert picture.startswith(b"\x89PNG")
        if folder:
            Path(folder, name).write_bytes(picture)
    browser.set_window_size(1280, 860)
