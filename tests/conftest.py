"""Shared fixtures: tiny datasets made on the fly, and the optional real-format fixtures."""

from __future__ import annotations

import os

# One intra-op thread per test process, as CI runs the suite (noxfile: OMP_NUM_THREADS=1), also for the `seg`
# subprocesses the tests start: on a shared 2-core machine several multi-threaded torch processes spin against
# each other and run many times slower. Set before torch is imported; an explicit setting wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil  # noqa: E402
import signal  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from segcli.core.callbacks import Callback  # noqa: E402
from segcli.data.prepare.shapes import prepare_shapes  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"

# A shell without job control starts background commands (`nohup .ci/run &`, some CI runners) with SIGINT
# ignored, and Python then installs no KeyboardInterrupt handler, here or in the `seg` subprocesses the tests
# start: the Ctrl-C tests would see SIG_IGN or wait for a run that never stops. The tests are about segcli's
# handling of Ctrl-C, so they run as from a terminal; a Python handler is reset to the default on exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# A training test's run directory holds ~200 MB (state.pt with optimiser and EMA, three weights files); kept
# for ~100 such tests that is ~24 GB per session, enough to fill a CI disk. A passed test's tmp_path is
# removed as soon as its fixtures are torn down; a failed test's stays for inspection.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_PASSED] = report.passed


_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    tmp = (getattr(item, "funcargs", None) or {}).get("tmp_path")
    if tmp is not None and item.stash.get(_PASSED, False):
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny shapes dataset (16 train, 8 val, 48 px), shared read-only by the whole session."""
    root = tmp_path_factory.mktemp("shapes") / "shapes"
    prepare_shapes(root, train=16, val=8, size=48, seed=1)
    return root


@pytest.fixture
def fixtures_dir() -> Path:
    """../shared/fixtures, or skip when this checkout has none."""
    if not FIXTURES.is_dir():
        pytest.skip("../shared/fixtures is not present")
    return FIXTURES


TINY = [
    "model.backbone=resnet18",
    "model.decoder_channels=16",
    "augment.crop_size=[32,32]",
    "augment.scale=[0.8,1.2]",
    "data.batch_size=4",
    "data.num_workers=0",
    "train.epochs=2",
    "train.amp=none",
    "train.channels_last=false",
    "schedule.warmup_iters=2",
]


@pytest.fixture
def tiny_overrides(shapes_root: Path, tmp_path: Path) -> list[str]:
    """Overrides that make any preset train in seconds on the tiny dataset, into tmp_path/runs."""
    return [f"data.root={shapes_root}", f"train.out_dir={tmp_path / 'runs'}", *TINY]


class FakeClock(Callback):
    """The trainer's clock (patch ``segcli.train.trainer.clock`` with it and pass it as a callback),
    advanced by exactly one second per iteration: time-budget tests that cannot flake on a loaded machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        self.now += 1.0


@pytest.fixture
def tiny_converter(monkeypatch: pytest.MonkeyPatch) -> type:
    """Register the stand-in converter ``prepare_helpers.Tiny`` for one test; the converter registry's table is
    restored afterwards."""
    from prepare_helpers import Tiny

    from segcli.data.prepare import CONVERTERS, converters, register_converter

    converters()  # load the built-in converters first
    monkeypatch.setattr(CONVERTERS, "_items", dict(CONVERTERS._items))
    register_converter(Tiny)
    return Tiny


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path) -> Path:
    """An untrained tiny model saved as segcli weights for the dataset ``shapes_root``."""
    from segcli.config.load import load_preset
    from segcli.core.checkpoint import save_weights
    from segcli.core.factory import model_from_preset
    from segcli.data.format import read_dataset_info

    loaded = load_preset(
        "quickstart", ["model.backbone=resnet18", "model.decoder_channels=16", "model.pretrained=false", "eval.size=[]"]
    )
    preset = getattr(loaded, "preset", loaded)
    info = read_dataset_info(shapes_root)
    path = tmp_path_factory.mktemp("weights") / "w.safetensors"
    return save_weights(path, model_from_preset(preset.model, info.num_classes), preset, info)


@pytest.fixture
def data(shapes_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny shapes dataset (16 train, 8 val, 48 px) to spoil (``cli_helpers.DATA_CASES``)."""
    return Path(shutil.copytree(shapes_root, tmp_path / "data"))


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two smooth 64x96 images (one parity size 64x96, the other 48x72: not a multiple of 32); the export tests'
    parity images."""
    import cv2
    import numpy as np

    from segcli.data.io import write_image

    folder = tmp_path_factory.mktemp("parity_images")
    rng = np.random.default_rng(0)
    for i in range(2):
        low = rng.integers(0, 256, (4, 6, 3)).astype(np.float32)
        write_image(folder / f"im{i}.png", np.clip(cv2.resize(low, (96, 64)), 0, 255).astype(np.uint8))
    return folder


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path) -> object:
    """One tiny run with best, last and EMA weights, trained by the Python API's ``segcli.train`` (a
    :class:`segcli.train.fit.TrainRun`), shared by the eval and prediction tests of the engine, the CLI and the API."""
    import segcli

    out = tmp_path_factory.mktemp("evalruns")
    return segcli.train("quickstart", data=shapes_root, overrides=[f"train.out_dir={out}", *TINY, "train.ema=0.9"])


@pytest.fixture(scope="session")
def trained(trained_run: object) -> Path:
    """The run directory of :func:`trained_run`."""
    return Path(trained_run.run_dir)  # type: ignore[attr-defined]
