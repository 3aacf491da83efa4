"""JupyterLab in a real browser: %tensorboard inside Exercise 1.02, and Activity 1.01's widget panel.

Both notebooks are parameterized copies (papermill ``prepare_only``) in ``artifacts/browser/``, run
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

from .conftest import ARTIFACTS, REPO, expect_visible, screenshot, tensorboard_pids

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_ALL_TIMEOUT = 240  # seconds for one Run All: kernel start, TensorFlow import, %tensorboard, 1 tiny epoch

NOTEBOOK_STATE = """() => {
  const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
  if (!panel) return {prompts: [], status: null};
  const prompts = [...panel.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
  const indicator = panel.querySelector('.jp-Notebook-ExecutionIndicator');
  return {prompts, status: indicator ? indicator.getAttribute('data-status') : null};
}"""
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
    select_kernel = page.locator(".jp-Dialog").filter(has_text="Select Kernel")
    with contextlib.suppress(PlaywrightTimeout):  # shown when the kernel specs load late; a student picks Python 3
        select_kernel.locator(".jp-mod-accept").click(timeout=3000)
    expect_visible(page, page.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]'),
                   f"{where}: idle kernel", f"{notebook.stem}-opened", timeout=90_000)
    return where


def menu(page, top: str, item: str) -> None:
    """Click ``top`` in the main menu bar, then its entry ``item``."""
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel").get_by_text(top, exact=True).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel").get_by_text(item, exact=True).click()


def wait_until_run(page, where: str, shot: str, timeout: float = RUN_ALL_TIMEOUT) -> None:
    """Wait until every code cell has run and the kernel is idle; fail on an error or a timeout."""
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        state = page.evaluate(NOTEBOOK_STATE)
        prompts = state["prompts"]
        queued = any("*" in prompt for prompt in prompts)
        if prompts and not queued and state["status"] == "idle":
            if NUMBERED.match(prompts[-1]):
                return
            if any(NUMBERED.match(prompt) for prompt in prompts):  # Run All stopped at an error
                errors = [text for text in page.locator(".jp-OutputArea-output").all_inner_texts()
                          if "Error" in text or "Traceback" in text]
                path = screenshot(page, f"FAILED-{shot}")
                pytest.fail(f"{where}: a cell failed, Run All stopped (prompts {prompts}); "
                            f"see {path.relative_to(REPO)}:\n" + "\n".join(errors)[-2000:])
        page.wait_for_timeout(1000)
    path = screenshot(page, f"FAILED-{shot}")
    pytest.fail(f"{where}: cells still running after {timeout} s (prompts {state.get('prompts')}, "
                f"kernel {state.get('status')}); see {path.relative_to(REPO)}")


def expect_live_tensorboard(page, where: str, shot: str) -> str:
    """Assert the inline ``%tensorboard`` frame shows TensorBoard itself; return the frame's id."""
    iframe = page.locator('iframe[id^="tensorboard-frame-"]')
    expect_visible(page, iframe, f"{where}: inline TensorBoard iframe", shot)
    iframe.scroll_into_view_if_needed()
    inside = page.frame_locator('iframe[id^="tensorboard-frame-"]')
    expect_visible(page, inside.locator("tb-webapp app-header").get_by_text("TensorBoard"),
                   f"{where}: TensorBoard header inside the inline frame (blank or refused page?)", shot,
                   timeout=60_000)
    screenshot(page, shot)
    return iframe.get_attribute("id")


@pytest.fixture
def lab(jupyter_lab):
    """The shared JupyterLab; after each test its kernels and the TensorBoards they started are stopped."""
    before = tensorboard_pids()
    yield jupyter_lab
    jupyter_lab.shutdown_kernels()
    for pid in tensorboard_pids() - before:
        board.stop(pid)


def test_inline_tensorboard_is_live_after_run_all_and_after_a_crashed_tensorboard(page, lab):
    from tensorboard import manager

    notebook = prepare_notebook(REPO / "Exercise1.02" / "mnist.ipynb", ARTIFACTS / "mnist-small.ipynb",
                                epochs=1, train_samples=2000)  # run_name None: each run gets a new folder
    fit = lab.logs / "fit"
    where = open_notebook(page, lab, notebook, "browser-mnist")
    menu(page, "Run", "Run All Cells")
    wait_until_run(page, where, "notebook-run1")
    first_frame = expect_live_tensorboard(page, f"{where} (first Run All)", "notebook-tensorboard-run1")
    assert len(complete_runs(fit)) == 1, f"{where}: expected one finished run in {fit}"

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
    # Rerunning clears the outputs. (The new frame gets the same id: the magic draws it from Python's
    # random module, which the notebook seeds.)
    expect(page.locator(f"iframe#{first_frame}")).to_have_count(0, timeout=60_000)
    wait_until_run(page, where, "notebook-run2")
    expect_live_tensorboard(page, f"{where} (after restart)", "notebook-tensorboard-run2")
    outputs = "\n".join(page.locator(".jp-OutputArea-output").all_inner_texts())
    assert f"pid {info.pid}" not in outputs, f"{where}: %tensorboard reused the killed TensorBoard:\n{outputs}"
    assert len(complete_runs(fit)) == 2, f"{where}: expected two finished runs in {fit}"


def test_control_panel_renders_as_widgets_and_train_adds_a_run(page, lab):
    log_dir = lab.tmp / "widgets-hparams"
    notebook = prepare_notebook(REPO / "Activity1.01" / "hyperparams.ipynb", ARTIFACTS / "hyperparams-small.ipynb",
                                epochs=1, train_samples=3000, log_dir=str(log_dir))
    where = open_notebook(page, lab, notebook, "browser-widgets")
    menu(page, "Run", "Run All Cells")
    wait_until_run(page, where, "widgets-run")

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
    done = panel.locator(".widget-html").filter(has_text="done:")
    expect_visible(page, done, f"{where}: status 'done:' after pressing Train", "widget-panel-train",
                   timeout=180_000)
    new = complete_runs(log_dir) - before
    assert len(new) == 1, f"{where}: pressing Train should add one finished run to {log_dir}, got {new}"
    expect(done).to_contain_text(new.pop())
    panel.scroll_into_view_if_needed()
    screenshot(page, "widget-panel")
