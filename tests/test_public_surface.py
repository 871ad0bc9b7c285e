"""The package's public surface is exactly what ``signalhub.__all__`` names."""

from __future__ import annotations

import signalhub
from signalhub import errors


def test_every_public_name_is_importable_and_listed_once() -> None:
    assert len(signalhub.__all__) == len(set(signalhub.__all__))
    for name in signalhub.__all__:
        assert hasattr(signalhub, name), name


def test_the_exception_tree_has_one_root() -> None:
    for name in errors.__all__:
        error = getattr(errors, name)
        assert issubclass(error, errors.SignalhubError), name
        assert name in signalhub.__all__, f"{name} is not re-exported"


def test_no_other_public_names_leak_from_the_package() -> None:
    public = {name for name in vars(signalhub) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(signalhub, name)).__name__ == "module"}
    assert public - modules - {"annotations"} == set(signalhub.__all__) - {"__version__"}
