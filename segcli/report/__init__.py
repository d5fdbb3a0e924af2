"""What a person reads about a run: the console and log-file lines (:mod:`.textlog`), metric loggers
(:mod:`.loggers`: CSV, TensorBoard, Weights & Biases), the pictures in ``plots/`` (:mod:`.plots`), the
self-contained ``report.html`` (:mod:`.run_report`, :mod:`.html`) and the dataset browser (:mod:`.browser`).

Above infer (a report evaluates the best weights); below train, which emits the events these listen to.
Public calls: :func:`build_report`, :func:`browse` (with its :class:`PageLayout`), and the console lines the
CLI prints (:mod:`.textlog`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segcli.lazy import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    from segcli.report.browser import PageLayout as PageLayout
    from segcli.report.browser import browse as browse
    from segcli.report.run_report import build_report as build_report
    from segcli.report.textlog import ProgressLines as ProgressLines
    from segcli.report.textlog import ProgressMeter as ProgressMeter
    from segcli.report.textlog import fmt_bytes as fmt_bytes
    from segcli.report.textlog import fmt_duration as fmt_duration
    from segcli.report.textlog import validation_lines as validation_lines

_PUBLIC = {
    "build_report": "segcli.report.run_report",
    "browse": "segcli.report.browser",
    "PageLayout": "segcli.report.browser",
    **dict.fromkeys(
        ("ProgressLines", "ProgressMeter", "fmt_bytes", "fmt_duration", "validation_lines"), "segcli.report.textlog"
    ),
}


__getattr__ = lazy_names(__name__, _PUBLIC)
