"""Activity 1.01's control panel: sliders, a dropdown and a Train button, with live progress."""
from __future__ import annotations

import html
from typing import Any, Callable

import ipywidgets as widgets

from .params import OPTIMIZERS

BATCH_SIZES = [32, 64, 128, 256, 512, 1024]
SAMPLE_SIZES = [1000, 3000, 10000, 30000, 60000]


def _nearest(options: list[int], value: int) -> int:
    """The option closest to ``value`` (a slider only takes values it offers)."""
    return min(options, key=lambda option: abs(option - value))


def progress_callback(bar: widgets.IntProgress, status: widgets.HTML):
    """A Keras callback that shows the epoch, loss and accuracy in the given widgets as it trains."""
    import keras

    class LiveProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            bar.max = self.params.get("epochs", 1)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            bar.value = epoch + 1
            status.value = (
                f"epoch {epoch + 1}/{bar.max}: loss {logs.get('loss', float('nan')):.4f}, "
                f"accuracy {logs.get('accuracy', float('nan')):.4f}, "
                f"validation accuracy {logs.get('val_accuracy', float('nan')):.4f}"
            )

    return LiveProgress()


def control_panel(train: Callable[..., dict[str, Any]], *, learning_rate: float = 0.001, epochs: int = 5,
                  batch_size: int = 256, optimizer: str = "adam", train_samples: int | None = None) -> widgets.VBox:
    """Build the panel; pressing Train calls ``train(learning_rate=…, epochs=…, batch_size=…,
    optimizer=…, train_samples=…, callbacks=[live progress])`` and shows its result."""
    style = {"description_width": "110px"}
    layout = widgets.Layout(width="480px")
    lr = widgets.FloatLogSlider(value=learning_rate, base=10, min=-5, max=-1, step=0.1,
                                description="learning rate", readout_format=".2g", style=style, layout=layout)
    n_epochs = widgets.IntSlider(value=epochs, min=1, max=20, description="epochs", style=style, layout=layout)
    batch = widgets.SelectionSlider(options=BATCH_SIZES, value=_nearest(BATCH_SIZES, batch_size),
                                    description="batch size", style=style, layout=layout)
    samples = widgets.SelectionSlider(options=SAMPLE_SIZES, value=_nearest(SAMPLE_SIZES, train_samples or 60000),
                                      description="train images", style=style, layout=layout)
    opt = widgets.Dropdown(options=list(OPTIMIZERS), value=optimizer, description="optimizer", style=style)
    button = widgets.Button(description="Train", button_style="primary", icon="play")
    bar = widgets.IntProgress(value=0, min=0, max=n_epochs.value, description="progress", style=style)
    status = widgets.HTML(value="Choose values, then press <b>Train</b>.")

    def on_click(_button: widgets.Button) -> None:
        button.disabled = True
        bar.value = 0
        status.value = "starting…"
        try:
            result = train(learning_rate=float(f"{lr.value:.2g}"),  # the slider's 0.001995… → 0.002
                           epochs=n_epochs.value, batch_size=batch.value,
                           optimizer=opt.value, train_samples=samples.value,
                           callbacks=[progress_callback(bar, status)])
            status.value = (f"done: <b>{result['run_name']}</b>, test accuracy "
                            f"{result['test_accuracy']:.4f}. Compare it in TensorBoard's HParams tab.")
        except Exception as err:  # shown in the panel instead of being lost in the log
            status.value = f"<span style='color:#b00'>failed: {type(err).__name__}: {html.escape(str(err))}</span>"
        finally:
            button.disabled = False

    button.on_click(on_click)
    return widgets.VBox([lr, n_epochs, batch, samples, opt, button, bar, status])
