"""Each package's public door (STYLE.md B1.2, B8, B11): ``__all__`` sorted and complete,
every public name importable, exception names ending in ``Error``, and a
docstring on every public callable of ``koru_core``."""

from __future__ import annotations

import importlib
import inspect
import re
import types

import pytest

PACKAGES = {
    "koru_core": None,
    "koru_duckdb": "duckdb",
    "koru_polars": "polars",
    "koru_dagster": "dagster",
}


def load(name: str) -> types.ModuleType:
    engine = PACKAGES[name]
    if engine is not None:
        pytest.importorskip(engine)
    return importlib.import_module(name)


def isort_key(name: str) -> tuple[int, list[object]]:
    """ruff RUF022's "isort-style" order: CONSTANTS, then Classes, then the rest,
    each in natural order."""
    if name.isupper() or (name.upper() == name and "_" in name):
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    return kind, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


@pytest.mark.parametrize("name", list(PACKAGES))
def test_all_is_sorted_and_unique(name: str) -> None:
    module = load(name)
    exported = list(module.__all__)
    assert len(set(exported)) == len(exported), "duplicates in __all__"
    assert exported == sorted(exported, key=isort_key), "__all__ is not sorted (isort style, as ruff RUF022)"


@pytest.mark.parametrize("name", list(PACKAGES))
def test_all_is_complete_and_importable(name: str) -> None:
    module = load(name)
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.__all__ names {public!r}, which is not importable"
    defined = {
        attr for attr, value in vars(module).items()
        if not attr.startswith("_") and not isinstance(value, types.ModuleType) and attr != "annotations"
    }
    missing = defined - set(module.__all__)
    assert not missing, f"public names of {name} missing from __all__: {sorted(missing)}"
    namespace: dict[str, object] = {}
    exec(f"from {name} import *", namespace)  # noqa: S102 - the star import users may write
    assert set(module.__all__) <= set(namespace)


@pytest.mark.parametrize("name", list(PACKAGES))
def test_exception_names_end_in_error(name: str) -> None:
    module = load(name)
    for public in module.__all__:
        value = getattr(module, public)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert public.endswith("Error"), f"{name}.{public} is an exception not named ...Error"


def test_koru_errors_share_one_root() -> None:
    import koru_core

    errors = [getattr(koru_core, n) for n in koru_core.__all__ if n.endswith("Error")]
    assert koru_core.KoruError in errors and len(errors) >= 8
    for cls in errors:
        assert issubclass(cls, koru_core.KoruError)
        assert (cls.__doc__ or "").strip(), f"{cls.__name__} has no docstring"


def _callables() -> list[tuple[str, object]]:
    import koru_core

    found: list[tuple[str, object]] = []
    for public in koru_core.__all__:
        value = getattr(koru_core, public)
        if inspect.isfunction(value) or inspect.isclass(value):
            found.append((public, value))
        if inspect.isclass(value) and not issubclass(value, BaseException):
            for attr, member in vars(value).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    found.append((f"{public}.{attr}", member))
    return found


@pytest.mark.parametrize(("qualname", "obj"), _callables(), ids=[q for q, _ in _callables()])
def test_every_public_callable_of_koru_core_has_a_docstring(qualname: str, obj: object) -> None:
    doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"koru_core.{qualname} has no docstring"
    if inspect.isclass(obj) and doc == inspect.getdoc(object):
        pytest.fail(f"koru_core.{qualname} only inherits object's docstring")
