"""JupyterLab in a real browser: %tensorboard inside Exercise 1.02, and Activity 1.01's widget panel.

Both notebooks are parameterized copies (papermill ``prepare_only``) under ``artifacts/browser/``, run
through the UI the way a student runs them: Run ▸ Run All Cells.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from tflab import board, runs

from .conftest import REPO, expect_visible, screenshot, stop_tensorboards, tensorboard_pids

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_ALL_TIMEOUT = 240  # seconds for one Run All: kernel start, TensorFlow import, %tensorboard, 1 tiny epoch

NOTEBOOK_STATE = """() => {
  const prompts = [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
    .map(e => e.textContent.trim());
  const indicator = document.querySelector('.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
  const kernel = [...document.querySelectorAll('.jp-StatusBar-TextItem')].map(e => e.textContent)
    .find(text => text.includes(' | ')) || null;
  return {prompts, status: indicator ? indicator.getAttribute('data-status') : null, kernel};
}"""
QUEUED = """() => [...document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell .jp-InputPrompt')]
  .some(e => e.textContent.includes('*'))"""
NUMBERED = re.compile(r"^\[\d+\]:$")


def prepare_notebook(source: Path, target: Path, **parameters) -> Path:
    """A copy of ``source`` with ``parameters`` injected (not executed), where Jupyter can open it."""
    import papermill

    target.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(str(source), str(target), parameters=parameters, prepare_only=True,
                               progress_bar=False)
    return target


def complete_runs(parent: Path) -> set[str]:
    """Names of the finished runs (metrics.json status ``complete``) under ``parent``."""
    if not parent.is_dir():
        return set()
    return {run.name for run in parent.iterdir() if run.is_dir() and runs.run_status(run) == runs.COMPLETE}


def open_notebook(page, lab, notebook: Path, workspace: str) -> str:
    where = f"JupyterLab notebook {notebook.name}"
    page.goto(lab.notebook_url(notebook, workspace))
    expect_visible(page, page.locator(".jp-NotebookPanel .jp-Notebook .jp-CodeCell").first,
                   f"{where}: code cells", f"{notebook.stem}-opened", timeout=60_000)
    idle = page.locator(".jp-StatusBar-TextItem").filter(has_text=re.compile(r"\| Idle$"))  # kernel started
    select_kernel = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    expect_visible(page, idle.or_(select_kernel), f"{where}: idle kernel", f"{notebook.stem}-opened",
                   timeout=90_000)
    if select_kernel.is_visible():  # can happen when the kernel specs load late; a student picks Python 3
        select_kernel.locator(".jp-mod-accept").click()
        expect_visible(page, idle, f"{where}: idle kernel", f"{notebook.stem}-opened", timeout=90_000)
    return where


def menu(page, top: str, item: str) -> None:
    """Click ``top`` in the main menu bar, then its entry ``item``."""
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").get_by_text(top, exact=True).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def wait_until_queued(page, where: str, shot: str, timeout: float = 60_000) -> None:
    """Wait until Run All has queued the cells (their prompts show ``[*]``)."""
    try:
        page.wait_for_function(QUEUED, timeout=timeout)
    except PlaywrightTimeout:
        path = screenshot(page, f"FAILED-{shot}")
        pytest.fail(f"{where}: no cell was queued after Run All ({page.evaluate(NOTEBOOK_STATE)}); "
                    f"see {path.relative_to(REPO)}")


def wait_until_run(page, where: str, shot: str, timeout: float = RUN_ALL_TIMEOUT) -> None:
    """After Run All has queued the cells: wait until every one has run and the kernel is idle.

    Fails at once when Run All stops at an error (the cells after it lose their ``[*]``).
    """
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE)
        prompts = state["prompts"]
        if prompts and not any("*" in prompt for prompt in prompts) and state["status"] == "idle":
            if NUMBERED.match(prompts[-1]):
                return
            errors = [text for text in page.locator(".jp-OutputArea-output").all_inner_texts()
                      if "Error" in text or "Traceback" in text]
            path = screenshot(page, f"FAILED-{shot}")
            pytest.fail(f"{where}: a cell failed, Run All stopped (prompts {prompts}); "
                        f"see {path.relative_to(REPO)}:\n" + "\n".join(errors)[-2000:])
        page.wait_for_timeout(1000)
    path = screenshot(page, f"FAILED-{shot}")
    pytest.fail(f"{where}: cells still running after {timeout} s ({state}); see {path.relative_to(REPO)}")


def run_all(page, where: str, shot: str) -> None:
    """Run ▸ Run All Cells, and wait until every cell has run."""
    menu(page, "Run", "Run All Cells")
    wait_until_queued(page, where, shot)
    wait_until_run(page, where, shot)


def expect_live_tensorboard(page, where: str, shot: str, run_name: str) -> None:
    """Assert the inline ``%tensorboard`` frame shows a live TensorBoard listing ``run_name`` after a reload."""
    iframe = page.locator('iframe[id^="tensorboard-frame-"]')
    try:
        expect_visible(page, iframe, f"{where}: inline TensorBoard iframe", shot)
    except AssertionError as err:  # say what %tensorboard printed instead (a port error, a time-out)
        said = [text for text in page.locator(".jp-OutputArea-output").all_inner_texts() if "TensorBoard" in text]
        raise AssertionError(f"{err}; %tensorboard printed: {said}") from None
    iframe.scroll_into_view_if_needed()
    inside = page.frame_locator('iframe[id^="tensorboard-frame-"]')
    expect_visible(page, inside.locator("tb-webapp app-header").get_by_text("TensorBoard"),
                   f"{where}: TensorBoard header inside the inline frame (blank or refused page?)", shot,
                   timeout=60_000)
    # The frame opened before the training wrote its scalars. It may even sit on the Graphs dashboard,
    # whose reload button is disabled (the Keras graph came first), so open Time Series in it, then
    # press its reload button as the notebook tells students to.
    iframe.element_handle().content_frame().goto(f"{iframe.get_attribute('src')}#timeseries")
    run = inside.locator("runs-selector").get_by_text(f"{run_name}/validation", exact=True)
    reload = inside.locator("app-header-reload button")
    deadline = time.monotonic() + 90
    while not run.is_visible() and time.monotonic() < deadline:
        if reload.is_enabled():  # disabled while TensorBoard is still loading
            with contextlib.suppress(PlaywrightTimeout):
                reload.click(timeout=5000)
        with contextlib.suppress(AssertionError):
            expect(run).to_be_visible(timeout=3000)
    expect_visible(page, run, f"{where}: run '{run_name}/validation' in the inline TensorBoard", shot, timeout=1)
    screenshot(page, shot)


@pytest.fixture
def lab(jupyter_lab):
    """The shared JupyterLab; after each test its kernels and the TensorBoards they started are stopped."""
    before = tensorboard_pids()
    yield jupyter_lab
    jupyter_lab.shutdown_kernels()
    stop_tensorboards(jupyter_lab.tmp, before)


def test_inline_tensorboard_is_live_after_run_all_and_after_a_crashed_tensorboard(page, lab):
    from tensorboard import manager

    notebook = prepare_notebook(REPO / "Exercise1.02" / "mnist.ipynb", lab.notebooks / "mnist-small.ipynb",
                                epochs=1, train_samples=2000)  # run_name None: each run gets a new folder
    fit = lab.logs / "fit"
    where = open_notebook(page, lab, notebook, "browser-mnist")
    run_all(page, where, "notebook-run1")
    first_runs = complete_runs(fit)
    assert len(first_runs) == 1, f"{where}: expected one finished run in {fit}, got {first_runs}"
    expect_live_tensorboard(page, f"{where} (first Run All)", "notebook-tensorboard-run1", *first_runs)

    # Crash the TensorBoard: SIGKILL leaves its info file behind, a stale record that %tensorboard
    # would "reuse" (pointing the frame at a dead port) unless tflab.board.prepare removes it.
    (info,) = [info for info in manager.get_all() if Path(info.logdir).resolve() == fit.resolve()]
    os.kill(info.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while board.is_alive(info) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not board.is_alive(info), "the first TensorBoard still answers after SIGKILL"
    assert info.pid in {stale.pid for stale in manager.get_all()}, "the killed TensorBoard left no stale record"

    menu(page, "Kernel", "Restart Kernel and Run All Cells…")
    expect_visible(page, page.locator(".jp-Dialog"), f"{where}: restart dialog", "notebook-restart-dialog")
    page.locator(".jp-Dialog .jp-mod-accept").click()
    wait_until_queued(page, where, "notebook-run2")
    wait_until_run(page, where, "notebook-run2")
    outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert f"pid {info.pid}" not in outputs, f"{where}: %tensorboard reused the killed TensorBoard:\n{outputs}"
    second_runs = complete_runs(fit) - first_runs
    assert len(second_runs) == 1, f"{where}: expected a second finished run in {fit}, got {second_runs}"
    expect_live_tensorboard(page, f"{where} (after restart)", "notebook-tensorboard-run2", *second_runs)


def test_control_panel_renders_as_widgets_and_train_adds_a_run(page, lab):
    log_dir = lab.tmp / "widgets-hparams"
    notebook = prepare_notebook(REPO / "Activity1.01" / "hyperparams.ipynb",
                                lab.notebooks / "hyperparams-small.ipynb",
                                epochs=1, train_samples=3000, log_dir=str(log_dir))
    where = open_notebook(page, lab, notebook, "browser-widgets")
    run_all(page, where, "widgets-run")

    panel = page.locator(".jp-OutputArea-output .widget-vbox").filter(has=page.locator("button.widget-button"))
    expect_visible(page, panel, f"{where}: control panel (a widget VBox)", "widget-panel")
    outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert "VBox(children=" not in outputs, f"{where}: the panel is printed as text, not rendered as widgets"
    expect(panel.locator(".widget-slider")).to_have_count(4)  # learning rate, epochs, batch size, train images
    expect_visible(page, panel.locator(".widget-dropdown select"), f"{where}: optimizer dropdown", "widget-panel")
    train = panel.locator("button.widget-button").filter(has_text="Train")
    expect_visible(page, train, f"{where}: Train button", "widget-panel")
    readouts = panel.locator(".widget-readout")  # the panel starts from the Parameters cell's values
    expect(readouts.nth(1)).to_have_text("1")
    expect(readouts.nth(3)).to_have_text("3000")

    before = complete_runs(log_dir)
    assert len(before) == 1, f"{where}: Run All should have trained once into {log_dir}"
    train.click()
    finished = panel.locator(".widget-html").filter(has_text=re.compile(r"^(done|failed):"))
    expect_visible(page, finished, f"{where}: status 'done:' after pressing Train", "widget-panel-train",
                   timeout=180_000)
    status = finished.inner_text()
    if not status.startswith("done:"):
        path = screenshot(page, "FAILED-widget-panel-train")
        pytest.fail(f"{where}: pressing Train shows {status!r}; see {path.relative_to(REPO)}")
    new = complete_runs(log_dir) - before
    assert len(new) == 1, f"{where}: pressing Train should add one finished run to {log_dir}, got {new}"
    assert new.pop() in status, f"{where}: the status does not name the new run: {status!r}"
    panel.scroll_into_view_if_needed()
    screenshot(page, "widget-panel")
