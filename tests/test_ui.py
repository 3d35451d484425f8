"""The Dagster UI in a real browser (Playwright driving headless Chromium) over the materialized micro graph.

`dagster dev` (webserver and daemon) serves the session's micro graph instance on a loopback port. The test
checks what a user audits there: the lineage shows every asset, `sft_corpus`'s drift check passed,
`arm_comparison` shows its table and plot, the schedule and the sensor are listed, and a materialization
launched from the UI succeeds. Screenshots go to `test-artifacts/ui/` (or $TESSY_TEST_ARTIFACTS/ui).
`make test` installs Debian's chromium; Playwright's Python package drives it (no browser download).
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from dagster import DagsterInstance, DagsterRunStatus, materialize

from conftest import micro_resources

REPO = Path(__file__).parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("TESSY_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ui"
# The machine has no network: without these, Chromium keeps trying Google's services at start
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000  # the UI loads the whole code location's snapshot on first visit; two shared cores


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(micro_graph, tmp_path_factory):
    from tessy_dagster.definitions import all_assets

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    comparison = materialize(all_assets, selection=["arm_comparison"], resources=micro_resources(micro_graph.home),
                             instance=micro_graph.instance)
    assert comparison.success
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(micro_graph.dagster_home), "TESSY_HOME": str(micro_graph.home),
           "TESSY_PROFILE": "micro"}
    log = (tmp_path_factory.mktemp("ui") / "dagster_dev.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-m", "tessy_dagster.definitions",
                               "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, f"dagster dev exited; see {log.name}"
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"the webserver did not answer in 180 s; see {log.name}"
            time.sleep(1)
        yield url, micro_graph
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


@pytest.fixture(scope="module")
def page(ui):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        # Dagster's one-time "Join the Dagster community" dialog opens whenever the UI decides to, over
        # whatever the test is about to click: Playwright dismisses it before each action.
        page.add_locator_handler(page.get_by_text("Join the Dagster community"),
                                 lambda: page.get_by_role("button", name="Skip").click())
        yield page
        browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


ALL_ASSETS = ("prompts", "benchmark", "teacher_model", "student_model", "boundary_dataset", "boundary_model",
              "student_responses", "cooperative_traces", "sft_corpus", "student_checkpoint", "benchmark_scores",
              "arm_comparison")


def _open(page, url: str, path: str, name: str, ready_text: str) -> None:
    """Go to a page, wait for `ready_text`, take a screenshot."""
    page.goto(url + path)
    page.get_by_text(ready_text, exact=True).first.wait_for()
    page.wait_for_timeout(1000)  # the graph lays itself out after its data arrives
    _shot(page, name)


def test_the_lineage_shows_every_asset(ui, page):
    url, _ = ui
    # arm_comparison's upstream lineage, every level: the whole graph, one node per asset
    _open(page, url, "/assets/arm_comparison?view=lineage&lineageScope=upstream&lineageDepth=20", "lineage",
          "arm_comparison")
    for name in ALL_ASSETS:
        assert page.get_by_text(name, exact=True).count() >= 1, name


def test_the_corpus_shows_its_drift_check_passed(ui, page):
    url, _ = ui
    _open(page, url, "/assets/sft_corpus?view=checks", "sft_corpus_checks", "style_drift")
    assert page.get_by_text("Great Expectations suite over per-trace style-drift metrics", exact=False).count()
    assert page.get_by_text("Passed", exact=True).count() >= 1
    assert page.get_by_text("Failed", exact=True).count() == 0


def _show_markdown(page, key: str):
    """Open the metadata entry `key` (a Markdown value: the UI shows it in a dialog) and return the dialog."""
    row = page.locator("tr").filter(has=page.get_by_text(key, exact=True)).first
    row.get_by_text("[Show Markdown]").click()
    dialog = page.get_by_role("dialog").filter(has=page.get_by_text(key, exact=True))
    dialog.wait_for()
    return dialog


def _close(page, dialog) -> None:
    dialog.get_by_role("button", name="Close").click()
    dialog.wait_for(state="detached")


def test_the_comparison_shows_its_table_and_its_plots(ui, page):
    url, graph = ui
    _open(page, url, "/assets/arm_comparison", "arm_comparison", "[Show Markdown]")
    dialog = _show_markdown(page, "comparison")
    assert dialog.get_by_text("Does tessy beat teacher_only and the base student?").count() == 1
    table = dialog.locator("table").first
    for model in ("teacher", "base", "tessy", "teacher_only"):
        assert table.get_by_role("cell", name=model, exact=True).count() == 1, model
    _shot(page, "arm_comparison_table")
    _close(page, dialog)
    for key in ("scores per suite", "style drift per arm"):
        dialog = _show_markdown(page, key)
        image = dialog.locator('img[src^="data:image/png"]')
        image.wait_for()
        width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert width > 100 and height > 100, (key, width, height)  # decoded, not a broken-image icon
        _shot(page, "arm_comparison_" + key.replace(" ", "_"))
        _close(page, dialog)


def test_the_schedule_and_the_sensor_are_listed(ui, page):
    url, _ = ui
    _open(page, url, "/automation", "automation", "retrain_schedule")
    for name in ("retrain_schedule", "prompts_source_sensor", "default_automation_condition_sensor"):
        assert page.get_by_text(name, exact=True).count() == 1, name


def test_a_materialization_launched_from_the_ui_succeeds(ui, page):
    url, graph = ui
    instance = DagsterInstance.from_config(str(graph.dagster_home))
    before = {r.run_id for r in instance.get_runs()}
    _open(page, url, "/assets/teacher_model", "teacher_model_before", "Materialize")
    page.locator("button", has_text="Materialize").first.click()
    deadline = time.monotonic() + 300
    while True:  # the daemon dequeues the run; a subprocess executes it
        new = [r for r in instance.get_runs() if r.run_id not in before]
        if new and new[0].is_finished:
            break
        assert time.monotonic() < deadline, f"no finished run 300 s after the click: {new}"
        time.sleep(2)
    [run] = new
    assert run.status == DagsterRunStatus.SUCCESS, run.status
    assert run.asset_selection and {k.to_user_string() for k in run.asset_selection} == {"teacher_model"}
    _open(page, url, f"/runs/{run.run_id}", "teacher_model_run", "Success")
