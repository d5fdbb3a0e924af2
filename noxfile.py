"""Developer tasks. `pip install nox` then `nox -s tests`, `nox -s lint`, `nox -s demo`."""

from __future__ import annotations

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


@nox.session(python="3.11")
def tests(session: nox.Session) -> None:
    """Install segcli with the export extra and the test group, lint, then run the whole test suite."""
    install_project(session, "export", "mat", groups=("test",))
    session.run("ruff", "check", "segcli", "tests", "bench", "noxfile.py")
    session.run("pytest", "-q", "--durations=15", *session.posargs)


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
