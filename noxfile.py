"""Developer tasks. `pip install nox` then `nox -s tests`, `nox -s lint`, `nox -s demo`."""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

PYPROJECT = nox.project.load_toml("pyproject.toml")


def install_project(session: nox.Session, *extras: str, groups: tuple[str, ...] = ()) -> None:
    spec = f".[{','.join(extras)}]" if extras else "."
    session.install("-e", spec)
    for group in groups:
        session.install(*nox.project.dependency_groups(PYPROJECT, group))


BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")  # as report/test_run_report.py


def install_browser(session: nox.Session) -> None:
    """Chromium from the system packages, for the run report's headless-browser test.

    Nothing to do when one is on PATH (no apt call, so a second run costs nothing). Installing needs root
    and apt-get (the CI's fresh Debian machine); anywhere else, or when apt fails, the test skips with the reason.
    """
    if any(shutil.which(b) for b in BROWSERS):
        return
    if not shutil.which("apt-get") or not hasattr(os, "geteuid") or os.geteuid() != 0:
        session.log("no Chromium and no root apt-get to install it: the report's browser test will skip")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    for step in ([], ["apt-get", "update", "-q"]):  # a fresh image has no package lists: update, then retry
        if step and subprocess.run(step, env=env, check=False).returncode != 0:
            break
        if subprocess.run(install, env=env, check=False).returncode == 0:
            session.log(f"installed {shutil.which('chromium') or 'chromium'}")
            return
    session.warn("apt-get could not install chromium: the report's browser test will skip")


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Install segcli with the export and openvino extras and the test group (and Chromium), lint, then run the whole
    test suite."""
    # openvino brings openvino (~180 MB), nncf and scikit-learn (~60 MB): about 10 s more to install, so that the
    # OpenVINO export, its int8 graph and the .xml backend are tested rather than skipped
    install_project(session, "export", "openvino", "mat", "tiff", groups=("test",))
    install_browser(session)
    session.run("ruff", "check", "segcli", "tests", "bench", "noxfile.py")
    # one process per core (pytest-xdist), each single-threaded: the suite is mostly small serial steps, so two
    # processes on a 2-core machine take ~0.65x the time of one; a file's tests share a worker (module fixtures)
    session.run(
        "pytest",
        "-q",
        "--durations=15",
        "-n",
        "auto",
        "--dist",
        "loadfile",
        *session.posargs,
        env={"OMP_NUM_THREADS": "1"},
    )


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff")
    session.run("ruff", "check", "segcli", "tests", "bench", "noxfile.py")
    session.run("ruff", "format", "--check", "segcli", "tests", "bench", "noxfile.py")


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """Prepare the built-in shapes dataset, train the quickstart preset, evaluate it and predict."""
    install_project(session)
    session.run("seg", "prepare", "shapes", "--out", "data/shapes")
    session.run("seg", "train", "presets/quickstart.toml", "data.root=data/shapes", *session.posargs)
    session.run("seg", "eval", "runs/quickstart", "--data", "data/shapes")
    session.run(
        "seg", "infer", "runs/quickstart", "data/shapes/images/val", "--out", "predictions/quickstart", "--overwrite"
    )
    session.log("predicted masks: predictions/quickstart/masks, overlays: predictions/quickstart/overlays")
