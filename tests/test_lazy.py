"""segcli.lazy: a package's public names imported on first use."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segcli.lazy import lazy_names


def test_the_three_ways_a_name_can_live() -> None:
    getattr_ = lazy_names("pkg", {"sqrt": "math", "root": "math:sqrt", "m": "math:"})
    import math

    assert getattr_("sqrt") is math.sqrt and getattr_("root") is math.sqrt and getattr_("m") is math
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'nope'"):
        getattr_("nope")


def test_importing_the_packages_loads_no_torch() -> None:
    code = "import sys, segcli, segcli.infer, segcli.train, segcli.report; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_public_names_resolve() -> None:
    import segcli
    import segcli.infer

    assert segcli.build_model.__name__ == "build_network" and callable(segcli.train)
    assert segcli.infer.evaluate.__module__ == "segcli.infer.evaluator"
