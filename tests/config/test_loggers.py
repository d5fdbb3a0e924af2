"""The table of metric loggers (segcli/config/loggers.py): validation names a bad logger or a missing package
without importing the loggers."""

from __future__ import annotations

import importlib
import sys

import pytest

from segcli.cli.app import run
from segcli.config.loggers import LOGGERS, LoggerInfo, logger_problems
from segcli.core.callbacks import Callback


def test_unknown_logger_lists_the_valid_ones(capfd: pytest.CaptureFixture) -> None:
    rc = run(["presets", "show", "quickstart", 'train.loggers=["csv","tensorbord"]'])
    err = capfd.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "train.loggers" in err and "tensorbord" in err and ", ".join(LOGGERS.names()) in err
    assert 'did you mean "tensorboard"' in err


def test_known_names_without_packages_to_check_have_no_problems() -> None:
    assert logger_problems(LOGGERS.names(), check_packages=False) == []
    assert logger_problems([]) == []


def test_each_unknown_name_is_one_message_in_order() -> None:
    problems = logger_problems(["csv", "tensorbord", "nothing_like_it"], check_packages=False)
    assert len(problems) == 2
    assert problems[0].startswith("train.loggers: unknown logger 'tensorbord' (did you mean \"tensorboard\"?)")
    assert problems[1].startswith("train.loggers: unknown logger 'nothing_like_it'; valid: ")
    assert problems[1].endswith(", ".join(LOGGERS.names()))


@pytest.mark.parametrize("name", [n for n in LOGGERS.names() if LOGGERS.get(n).package])
def test_a_missing_package_names_its_extra_and_the_way_around_it(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    info = LOGGERS.get(name)
    monkeypatch.setitem(sys.modules, info.package, None)  # find_spec of the package now fails
    (problem,) = logger_problems([name])
    assert problem.startswith(f"train.loggers: {name!r} needs the {info.package} package")
    assert f"pip install 'segcli[{info.extra}]'" in problem and f"remove {name!r} from train.loggers" in problem
    assert logger_problems([name], check_packages=False) == []  # only asked for when packages are checked


def test_csv_needs_nothing_and_builds_nothing() -> None:
    assert "csv" in LOGGERS and LOGGERS.get("csv") == LoggerInfo()


@pytest.mark.parametrize("name", [n for n in LOGGERS.names() if LOGGERS.get(n).module])
def test_every_listed_logger_names_a_callback_class_that_exists(name: str) -> None:
    info = LOGGERS.get(name)
    assert info.module.startswith("segcli.report.loggers.") and info.package and info.extra
    module = importlib.import_module(info.module)  # the logger modules import their packages only at start
    cls = getattr(module, info.cls)
    assert isinstance(cls, type) and issubclass(cls, Callback)
