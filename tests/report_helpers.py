"""A finished tiny run and a reader of its report.html, shared by the tests of segcli.report.run_report and of
`seg report`."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import TINY

from segcli.train.trainer import train


class Page(HTMLParser):
    """The parts of the report the tests look at: every img src, every external reference, table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []  # src/href values that are not data: URIs or #anchors
        self.rows: dict[str, int] = {}  # table id → body rows
        self.classes: list[str] = []
        self._table: str | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("src", "href"):
            v = a.get(key)
            if v and not v.startswith(("data:", "#")):
                self.links.append(v)
        if tag == "table":
            self._table = a.get("id") or ""
            self.rows.setdefault(self._table, 0)
        if tag == "tbody":
            self._in_body = True
        if tag == "tr" and self._in_body and self._table is not None:
            self.rows[self._table] += 1
        if tag == "link" or (tag == "script" and a.get("src")):
            self.links.append(a.get("href") or a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        if tag == "table":
            self._table = None


def parse(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    return text, page


def decode_data_uri(src: str) -> np.ndarray:
    head, _, data = src.partition(",")
    assert head == "data:image/png;base64"
    img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.size
    return img


def train_tiny_run(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 2-epoch run of quickstart on ``shapes_root`` (a module's ``trained`` fixture)."""
    out = tmp_path_factory.mktemp("report_runs")
    return train("quickstart", [f"data.root={shapes_root}", f"train.out_dir={out}", *TINY]).run_dir
