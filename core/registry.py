"""One registry mechanism for methods, models and metrics, as timm resolves models by name.

A :class:`Registry` resolves a name, in this order, from

1. the built-in entries (:meth:`Registry.register`) and objects handed over from Python
   (:meth:`Registry.add`, e.g. a class defined in a notebook and given to ``evaluate``);
2. the entry points of the installed packages in the registry's group
   (``saliency_benchmark.methods``, ``.models``, ``.metrics``): a plugin's ``pyproject.toml``
   says ``centre_gaussian = "my_package.methods:CentreGaussian"``;
3. a registered prefix (``timm:NAME``): ``make(NAME)`` builds the entry;
4. an import string ``package.module:attribute`` in the current environment (an installed
   package or the current folder).

Each loaded object goes through the registry's ``accept(obj, name, where)``, which checks it
(naming ``where`` it came from) and may convert it (a model factory into a spec). Import
strings come from the command line or from Python only: ``benchmark.config`` refuses a
settings file that names one, so a downloaded YAML file cannot run anything.

It lives in ``benchmark.core``, the bottom layer of the import contract, so that the methods,
models and metrics packages all use this one mechanism.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from benchmark.core.errors import BenchmarkError

T = TypeVar("T")

#: ``package.module:attribute`` (dotted module path, one attribute).
IMPORT_STRING = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$")


def is_import_string(name: str) -> bool:
    """Whether ``name`` has the form ``package.module:attribute``."""
    return bool(IMPORT_STRING.match(name))


def import_object(option: str, name: str) -> Any:
    """The attribute named by the import string ``name`` (given as ``option``, e.g. ``--model``),
    from an installed package or the current folder."""
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise BenchmarkError(
            f"{option} {name}: cannot import {module_name} ({error}); install the package, or run "
            "`python -m benchmark` (which imports from the current folder) in the folder that holds it"
        ) from None
    if not hasattr(module, attribute):
        raise BenchmarkError(f"{option} {name}: {module_name} has no attribute {attribute!r}")
    return getattr(module, attribute)


class Registry(Generic[T]):
    """Names of one kind (``"method"``, ``"model"``, ``"metric"``) and the objects they resolve to.

    Args:
        kind: what the entries are, in messages (``unknown method 'x'``).
        option: the command-line option that names them (``--method``).
        group: the entry point group of plugins (``saliency_benchmark.methods``).
        accept: ``accept(obj, name, where) -> T`` checks (and may convert) a loaded object;
            ``where`` names its source for the message of a BenchmarkError.
        own_form: how a user names their own entry, for the unknown-name message
            (``package.module:Class``).
    """

    def __init__(
        self,
        kind: str,
        option: str,
        group: str,
        accept: Callable[[Any, str, str], T],
        own_form: str,
    ) -> None:
        self.kind = kind
        self.option = option
        self.group = group
        self.accept = accept
        self.own_form = own_form
        self._builtin: dict[str, T] = {}
        self._prefixes: dict[str, tuple[Callable[[str], T], str]] = {}
        self._resolved: dict[str, T] = {}

    # -- feeding it -----------------------------------------------------------------------

    def register(self, name: str, entry: T) -> T:
        """A built-in entry; a name registered twice is a bug."""
        if name in self._builtin:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._builtin[name] = entry
        return entry

    def register_prefix(self, prefix: str, make: Callable[[str], T], help: str) -> None:
        """``PREFIX:NAME`` -> ``make(NAME)`` (a BenchmarkError for an unknown NAME)."""
        if prefix in self._prefixes:
            raise ValueError(f"{self.kind} prefix {prefix!r} is registered twice")
        self._prefixes[prefix] = (make, help)

    def add(self, name: str, obj: Any) -> T:
        """An object handed over from Python (not imported): checked and resolvable as ``name``."""
        entry = self.accept(obj, name, f"{self.kind} {name!r}")
        self._resolved[name] = entry
        return entry

    # -- reading it -----------------------------------------------------------------------

    def entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        """The installed packages' entry points of the group, by name."""
        return {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)}

    def names(self) -> list[str]:
        """The built-in names, then the installed plugins' entry point names."""
        return [*self._builtin, *(name for name in self.entry_points() if name not in self._builtin)]

    def builtin(self) -> dict[str, T]:
        """The built-in entries, by name, in registration order."""
        return dict(self._builtin)

    def prefixes(self) -> dict[str, str]:
        """Registered prefix -> one line of help."""
        return {prefix: help for prefix, (_, help) in self._prefixes.items()}

    def prefix_of(self, name: str) -> str | None:
        prefix, sep, _ = name.partition(":")
        return prefix if sep and prefix in self._prefixes else None

    def names_code(self, name: str) -> bool:
        """Whether ``name`` is an import string to import (not a built-in, an object handed over
        from Python or a registered prefix's name)."""
        return (
            is_import_string(name)
            and self.prefix_of(name) is None
            and name not in self._builtin
            and name not in self._resolved
        )

    def get(self, name: str) -> T:
        """The entry of a built-in name, an entry point name, a prefixed name or an import string;
        anything else is a BenchmarkError with the close names."""
        if name in self._builtin:
            return self._builtin[name]
        if name in self._resolved:
            return self._resolved[name]
        plugins = self.entry_points()
        prefix = self.prefix_of(name)
        if name in plugins:
            entry = self.accept(*self._load_entry_point(name, plugins[name]))
        elif prefix is not None:
            entry = self._prefixes[prefix][0](name[len(prefix) + 1 :])
        elif is_import_string(name):
            entry = self.accept(import_object(self.option, name), name, f"{self.option} {name}")
        else:
            known = [*self._builtin, *plugins]
            close = difflib.get_close_matches(name, known, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            forms = "".join(f"{p}:NAME, " for p in self._prefixes)
            raise BenchmarkError(
                f"unknown {self.kind} {name!r}{hint}; choose one of: {', '.join(known)}, or {forms}"
                f"or your own as {self.own_form}"
            ) from None
        self._resolved[name] = entry
        return entry

    def _load_entry_point(self, name: str, ep: importlib.metadata.EntryPoint) -> tuple[Any, str, str]:
        """``(object, name, where)`` of a plugin's entry point; a failing import is one
        BenchmarkError naming the package."""
        package = ep.dist.name if ep.dist is not None else "an installed package"
        try:
            obj = ep.load()
        except Exception as error:
            raise BenchmarkError(
                f"{self.kind} {name!r}: the entry point {ep.value!r} of package {package} ({ep.group}) does not "
                f"resolve: {type(error).__name__}: {error}; reinstall or fix {package}"
            ) from None
        return obj, name, f"{self.kind} {name!r} (entry point {ep.value!r} of package {package})"
