"""PEP 562 lazy re-exports, so that ``import lgg_core`` (or any subpackage) stays cheap and never imports torch.

A package lists ``{public name: submodule}``; the submodule is imported the first time the name is read.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for ``package`` re-exporting ``exports``.

    Args:
        package: the package's ``__name__``.
        exports: public name -> the submodule defining it, relative to the package (``"data.cache"``).

    Returns:
        The three module attributes to assign in the package's ``__init__``.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # cache: later reads skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(importlib.import_module(package).__dict__))

    return __getattr__, __dir__, sorted(exports)
