"""TensorBoard in a real browser: the Scalars cards of Exercise 1.02 and the HParams table of Activity 1.01."""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from .conftest import (REPO, expect_visible, lab_env, run_checked, screenshot, stop_tensorboards, tensorboard,
                       tensorboard_pids)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCALARS_RUN = "browser-scalars"
SWEEP = {"browser-lr0.01": 0.01, "browser-lr0.001": 0.001}  # run name -> learning rate


@pytest.fixture(scope="module")
def scalars_board(tmp_path_factory):
    """TensorBoard over logs/fit after a 2-epoch run of Exercise 1.02 on 2,000 images."""
    logs = tmp_path_factory.mktemp("scalars") / "logs"
    run_checked([sys.executable, "Exercise1.02/mnist.py", "--epochs", "2", "--train-samples", "2000",
                 "--run-name", SCALARS_RUN], lab_env(logs), timeout=300)
    with tensorboard(logs / "fit", [f"{SCALARS_RUN}/train", f"{SCALARS_RUN}/validation"],
                     logs.parent / "tensorboard.log") as url:
        yield url


def _run_trial(log_dir, run_name: str, learning_rate: float, out_dir) -> None:
    import papermill

    papermill.execute_notebook(
        str(REPO / "Activity1.01" / "hyperparams.ipynb"), str(out_dir / f"{run_name}.ipynb"),
        parameters={"log_dir": str(log_dir), "learning_rate": learning_rate, "epochs": 1,
                    "train_samples": 2000, "run_name": run_name},
        # No cwd=: papermill's chdir is process-wide, and these trials run in threads.
        # The kernel's folder goes through nbclient's resources instead.
        kernel_name="python3", progress_bar=False,
        resources={"metadata": {"path": str(REPO / "Activity1.01")}})


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def hparams_board(tmp_path_factory, monkeypatch_module):
    """TensorBoard over a tiny two-trial sweep of Activity 1.01 (papermill, 1 epoch on 2,000 images each)."""
    tmp = tmp_path_factory.mktemp("hparams").resolve()
    log_dir = tmp / "logs" / "hparams"
    monkeypatch_module.setenv("TFLAB_LOGDIR", str(tmp / "logs"))  # the kernels inherit it
    before = tensorboard_pids()
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:  # the two trials overlap their kernel start-ups
            trials = [pool.submit(_run_trial, log_dir, name, lr, tmp) for name, lr in SWEEP.items()]
            for trial in trials:
                trial.result()
        with tensorboard(log_dir, list(SWEEP), tmp / "tensorboard.log") as url:
            yield url
    finally:
        stop_tensorboards(tmp, before)  # any the notebooks' %tensorboard left behind


def test_scalars_show_accuracy_and_loss_for_train_and_validation(page, scalars_board):
    where = "TensorBoard scalars page"
    page.goto(scalars_board + "#timeseries")
    expect_visible(page, page.locator("app-header").get_by_text("TensorBoard"), f"{where}: header 'TensorBoard'",
                   "scalars-header")
    runs = page.locator("runs-selector")
    for series in ("train", "validation"):
        expect_visible(page, runs.get_by_text(f"{SCALARS_RUN}/{series}", exact=True),
                       f"{where}: run '{SCALARS_RUN}/{series}' in the runs selector", "scalars-runs")
    # Only the first groups of cards start expanded; filtering by tag shows both cards in one open group.
    tag_filter = page.locator('input[placeholder="Filter tags (regex)"]')
    tag_filter.fill("^epoch_(accuracy|loss)$")
    tag_filter.press("Escape")  # close the suggestions over the cards
    matching = page.locator("metrics-filtered-view")  # the group "Tags matching filter"
    for tag in ("epoch_accuracy", "epoch_loss"):
        card = matching.locator("scalar-card").filter(has=page.locator(f'tb-truncated-path[title="{tag}"]'))
        expect_visible(page, card, f"{where}: card '{tag}'", f"scalars-card-{tag}")
        expect_visible(page, card.locator("line-chart"), f"{where}: chart in card '{tag}'", f"scalars-chart-{tag}")
        for series in ("train", "validation"):
            row = card.locator("tb-data-table-content-row").filter(has_text=f"{SCALARS_RUN}/{series}")
            expect_visible(page, row, f"{where}: series '{series}' in card '{tag}'", f"scalars-series-{tag}")
    screenshot(page, "tensorboard-scalars")


def test_scalars_page_has_a_working_smoothing_control(page, scalars_board):
    where = "TensorBoard scalars page"
    page.goto(scalars_board + "#timeseries")
    expect_visible(page, page.get_by_role("button", name="Toggle settings side pane"),
                   f"{where}: 'Settings' button", "scalars-settings")
    label = page.locator("#scalars-smoothing-label")
    if not label.is_visible():
        page.get_by_role("button", name="Toggle settings side pane").click()
    expect_visible(page, label.get_by_text("Smoothing"), f"{where}: 'Smoothing' label in the settings pane",
                   "scalars-smoothing")
    slider = page.locator('mat-slider[aria-labelledby="scalars-smoothing-label"]')
    expect_visible(page, slider, f"{where}: 'Smoothing' slider", "scalars-smoothing")
    number = page.get_by_role("spinbutton", name="Smoothing")
    number.fill("0.9")
    number.press("Enter")
    expect(slider.locator("input[type=range]")).to_have_attribute("aria-valuetext", "0.9")


def test_hparams_table_lists_every_run_with_hyperparameters_and_test_accuracy(page, hparams_board):
    where = "TensorBoard HParams table"
    page.goto(hparams_board + "#hparams")
    table = page.locator("tf-hparams-table-view")
    expect_visible(page, table, f"{where}: table view", "hparams-table", timeout=60_000)
    for column in ("Trial ID", "learning_rate", "epochs", "test accuracy"):
        expect_visible(page, table.get_by_text(column, exact=True), f"{where}: column '{column}'",
                       "hparams-columns")
    for run_name in SWEEP:
        expect_visible(page, table.get_by_text(run_name, exact=True), f"{where}: row of run '{run_name}'",
                       "hparams-rows")
    screenshot(page, "hparams-table")
