"""Tests for tflab.params: every validator accepts what it documents and rejects the rest in one line."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from tflab import params


def assert_one_line_naming(err: pytest.ExceptionInfo, name: str, value: object) -> None:
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{name} must be")
    assert repr(value)[:50] in message


# --- numbers ------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (0.001, 0.001), (1, 1.0), ("0.001", 0.001), (" 2e-3 ", 0.002), (np.float32(0.5), 0.5), (10, 10.0),
])
def test_positive_float_accepts_numbers_and_numeric_strings(value, expected) -> None:
    assert params.positive_float(value, "learning_rate") == pytest.approx(expected)


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (-0.1, ValueError), ("0", ValueError), ("-1", ValueError), ("ten", ValueError),
    (float("nan"), ValueError), ("inf", ValueError), (math.inf, ValueError), ("", ValueError),
    (True, TypeError), (None, TypeError), ([0.1], TypeError),
])
def test_positive_float_rejects_non_positive_or_non_numbers(value, error) -> None:
    with pytest.raises(error) as err:
        params.positive_float(value, "learning_rate")
    assert_one_line_naming(err, "learning_rate", value)
    assert "a number > 0" in str(err.value)


@pytest.mark.parametrize("value, expected", [(5, 5), ("5", 5), (5.0, 5), (" 7 ", 7), (np.int64(3), 3), (1000, 1000)])
def test_int_in_range_accepts_whole_numbers_in_range(value, expected) -> None:
    result = params.int_in_range(value, "epochs", 1, 1000)
    assert result == expected and type(result) is int


@pytest.mark.parametrize("value, error", [
    (0, ValueError), (1001, ValueError), (2.5, ValueError), ("2.5", ValueError), ("5x", ValueError),
    ("ten", ValueError), ("nan", ValueError), (-1, ValueError), (True, TypeError), (None, TypeError),
])
def test_int_in_range_rejects_fractions_words_and_out_of_range(value, error) -> None:
    with pytest.raises(error) as err:
        params.int_in_range(value, "epochs", 1, 1000)
    assert_one_line_naming(err, "epochs", value)
    assert "a whole number >= 1 and <= 1000" in str(err.value)


def test_int_in_range_without_upper_bound_says_only_the_lower_one() -> None:
    with pytest.raises(ValueError, match=r"seed must be a whole number >= 0, got -3$"):
        params.int_in_range(-3, "seed", 0)


def test_long_bad_values_are_shortened_in_the_message() -> None:
    with pytest.raises(ValueError) as err:
        params.int_in_range("x" * 500, "epochs", 1, 1000)
    assert len(str(err.value)) < 150 and str(err.value).endswith("...")


# --- choices, optional values, folders, flags -----------------------------------------------

@pytest.mark.parametrize("value", ["adam", "SGD", " rmsprop "])
def test_choice_accepts_any_case(value) -> None:
    assert params.choice(value, "optimizer", params.OPTIMIZERS) == value.strip().lower()


@pytest.mark.parametrize("value", ["adamw", "", None, 1])
def test_choice_rejects_unknown_values_and_lists_the_choices(value) -> None:
    with pytest.raises(ValueError) as err:
        params.choice(value, "optimizer", params.OPTIMIZERS)
    assert_one_line_naming(err, "optimizer", value)
    assert "one of adam, sgd, rmsprop" in str(err.value)


@pytest.mark.parametrize("value, expected", [(None, None), ("None", None), ("", None), (3000, 3000), ("60000", 60000)])
def test_train_samples_is_none_or_a_count_up_to_60000(value, expected) -> None:
    assert params.train_samples(value) == expected


@pytest.mark.parametrize("value", [0, 60001, 70000, "all", 2.5])
def test_train_samples_rejects_counts_outside_the_training_set(value) -> None:
    with pytest.raises(ValueError) as err:
        params.train_samples(value)
    assert_one_line_naming(err, "train_samples", value)
    assert "<= 60000" in str(err.value)


@pytest.mark.parametrize("value", ["lr0.01", "run-1", "a_b+c=d.e", "X" * 120])
def test_run_name_accepts_plain_folder_names(value) -> None:
    assert params.run_name(value) == value


@pytest.mark.parametrize("value", [None, "None", ""])
def test_run_name_none_means_derive_one(value) -> None:
    assert params.run_name(value) is None


@pytest.mark.parametrize("value", ["../x", "a/b", "/abs", "..", ".hidden", "a b", "x" * 121, "a\\b", 5])
def test_run_name_rejects_paths_and_odd_characters(value) -> None:
    with pytest.raises(ValueError) as err:
        params.run_name(value)
    assert_one_line_naming(err, "run_name", value)
    assert "folder name of letters, digits and ._+=-" in str(err.value)


def test_log_folder_defaults_and_resolves(tmp_path: Path) -> None:
    assert params.log_folder(None, default=tmp_path / "d") == tmp_path / "d"
    assert params.log_folder(str(tmp_path / "x" / ".." / "y"), default=tmp_path) == tmp_path / "y"


def test_log_folder_rejects_a_file_and_non_paths(tmp_path: Path) -> None:
    file = tmp_path / "f"
    file.write_text("")
    with pytest.raises(ValueError, match=r"^log_dir must be None or a folder path, got .*\(a file\)$"):
        params.log_folder(str(file), default=tmp_path)
    with pytest.raises(TypeError, match="^log_dir must be None or a folder path, got 3$"):
        params.log_folder(3, default=tmp_path)


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("False", False), ("1", True), (0, False), ("no", False),
])
def test_flag_accepts_bools_and_their_spellings(value, expected) -> None:
    assert params.flag(value, "overwrite") is expected


@pytest.mark.parametrize("value", ["maybe", None, 2])
def test_flag_rejects_anything_else(value) -> None:
    with pytest.raises(ValueError, match=r"^overwrite must be True or False, got "):
        params.flag(value, "overwrite")


# --- validate (the notebooks' check) ------------------------------------------------------------

GOOD = dict(learning_rate=0.002, epochs=5, batch_size=256)


def test_validate_normalises_every_parameter() -> None:
    assert params.validate(**GOOD, train_samples="3000", optimizer="SGD", run_name="None", seed="7") == {
        "learning_rate": 0.002, "epochs": 5, "batch_size": 256, "optimizer": "sgd",
        "train_samples": 3000, "run_name": None, "seed": 7,
    }


def test_validate_accepts_papermill_raw_strings() -> None:
    checked = params.validate(learning_rate="0.001", epochs="5", batch_size="128")
    assert checked["learning_rate"] == 0.001 and checked["epochs"] == 5 and checked["batch_size"] == 128


def test_validate_stops_at_the_first_bad_parameter_and_names_it() -> None:
    with pytest.raises(ValueError, match="^epochs must"):
        params.validate(**(GOOD | {"epochs": 0, "batch_size": 0}))


# --- command line helpers -------------------------------------------------------------------

def test_lab_argument_parser_reports_one_line_and_exits_2(capsys) -> None:
    parser = params.LabArgumentParser(prog="prog")
    parser.add_argument("--epochs", type=params.arg_type(lambda v, n: params.int_in_range(v, n, 1, 10), "--epochs"))
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--epochs", "ten"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "prog: error: argument --epochs: --epochs must be a whole number >= 1 and <= 10, got 'ten' (see --help)\n"
    )


def test_arg_type_converts_good_values() -> None:
    convert = params.arg_type(params.positive_float, "--learning-rate")
    assert convert("0.01") == 0.01 and convert.__name__ == "--learning-rate"


def test_fail_prints_one_line_and_exits_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        params.fail("run 'x' already finished")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: run 'x' already finished\n"
