"""The map from the engine's argument names to the flags that set them, and messages rendered with it."""

from __future__ import annotations

from segcli.cli.flags import FLAG_OF, cli_message, flag_of
from segcli.errors import arg


def test_flag_of_is_the_name_with_dashes_unless_listed() -> None:
    assert flag_of("tile") == "--tile"
    assert flag_of("tta_scales") == "--tta-scales"
    assert flag_of("skip_existing") == "--skip-existing"
    for name, flag in FLAG_OF.items():
        assert flag_of(name) == flag
    assert flag_of("out_dir") == "--out" and flag_of("data_root") == "--data"


def test_every_listed_exception_differs_from_the_default() -> None:
    """An entry equal to what the rule gives anyway would hide a renamed flag."""
    for name, flag in FLAG_OF.items():
        assert flag != "--" + name.replace("_", "-"), name


def test_cli_message_renders_each_marked_name_as_its_flag() -> None:
    message = f"{arg('out_dir')} exists; pass {arg('overwrite')} or {arg('skip_existing')} (see {arg('num_workers')})"
    assert cli_message(message) == "--out exists; pass --overwrite or --skip-existing (see --workers)"


def test_cli_message_leaves_other_text_alone() -> None:
    text = "train.amp = 'fp32' is not one of auto, none; `Not_an_arg` and `x-y` stay; 2 `` 3"
    assert cli_message(text) == text
