"""The resolved configuration of a run: built-in defaults, then each
``--config FILE.yaml`` in order (:mod:`benchmark.config_files`), then the command line
(later wins).

Only registered methods and models can be named; nothing in a file can instantiate a class
(an import string ``package.module:Class`` is refused unless the command line names it too).
A method parameter from a file applies to the selected methods that have it (a thesis
file can hold LOTS and CAM settings); one that no method has is an error, as is any
unknown key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from benchmark.config_files import MODEL_KEYS, WANDB_KEYS, Overrides
from benchmark.core.errors import BenchmarkError
from benchmark.params import Parameter, coerce, dataclass_parameters
from benchmark.run_options import RunOptions, option_parameters
from benchmark.variants import base_method, split_variant


@dataclass(frozen=True)
class CommandOptions:
    """The run options (fields of :class:`RunOptions`) one command takes, so that every command
    parses, layers (``--config`` files, then the command line) and validates them alike.

    The command takes every option but ``exclude``, or with ``only`` just those; ``defaults``
    and ``help`` replace RunOptions' default and help of an option for this command (``targets``
    reads 32 images per batch and all images of a class); ``own`` names the argparse
    destinations of the command's own options (``targets --kind``), which are not run options.
    """

    name: str
    exclude: tuple[str, ...] = ()
    only: tuple[str, ...] | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    help: Mapping[str, str] = field(default_factory=dict)
    own: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        known = {p.name for p in option_parameters()}
        named = {*self.exclude, *(self.only or ()), *self.defaults, *self.help}
        assert named <= known, f"{self.name}: not run options: {sorted(named - known)}"

    def takes(self, name: str) -> bool:
        return name not in self.exclude and (self.only is None or name in self.only)

    def parameters(self) -> list[Parameter]:
        """The options the command takes, with its own defaults and help."""
        return [
            Parameter(p.name, p.annotation, self.defaults.get(p.name, p.default), self.help.get(p.name, p.help))
            for p in option_parameters()
            if self.takes(p.name)
        ]


def metric_parameters(extra: Sequence[str] = ()) -> list[Parameter]:
    """The ``--metrics.<name>`` options: the scorer's own, then those each metric declares
    (``options_class``) of the built-in metrics, the installed plugins and ``extra`` (metrics
    named by import strings), each name once."""
    from benchmark.metrics.catalog import loadable_metric_classes
    from benchmark.metrics.options import options_classes
    from benchmark.metrics.scorer_options import ScorerOptions

    parameters: dict[str, Parameter] = {}
    for cls in [ScorerOptions, *options_classes(loadable_metric_classes(extra))]:
        for p in dataclass_parameters(cls):
            parameters.setdefault(p.name, p)
    return list(parameters.values())


def _named_extras(layers: list[Overrides]) -> list[str]:
    """The metrics the layers name in ``extra`` by import string (their options are known then)."""
    from benchmark.core.registry import is_import_string

    return list(dict.fromkeys(name for layer in layers for name in layer.extra_names() if is_import_string(name)))


def resolve_metrics(layers: list[Overrides]) -> dict[str, Any]:
    """The ``--metrics.*`` values of ``layers`` (lowest precedence first), typed and checked:
    every option of the scorer, of the built-in metrics and of the metrics computed (``extra``),
    with its default where no layer gives it, and any other metric option a layer gives."""
    from benchmark.metrics.catalog import builtin_metric_keys, metric_class
    from benchmark.metrics.options import options_classes
    from benchmark.metrics.scorer import SaliencyScorer
    from benchmark.metrics.scorer_options import ScorerOptions
    from benchmark.metrics.selection import check_extra

    metric_types = {p.name: p for p in metric_parameters(_named_extras(layers))}
    given: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.metrics.items():
            if key not in metric_types:
                raise BenchmarkError(
                    f"{layer.source}: unknown metrics parameter {key!r}; valid: {', '.join(metric_types)}"
                )
            given[key] = coerce(value, metric_types[key].annotation, f"--metrics.{key}")
    computed = [*builtin_metric_keys(), *check_extra(given.get("extra"))]
    classes = [ScorerOptions, *options_classes(metric_class(key) for key in computed)]
    defaults = {p.name: p.default for cls in classes for p in dataclass_parameters(cls)}
    metrics = {name: given.get(name, default) for name, default in defaults.items()}
    metrics.update(given)
    SaliencyScorer(**metrics)  # checks every value, before any model work
    return metrics


def method_parameters(method: str) -> list[Parameter]:
    from benchmark.methods import get_method

    return dataclass_parameters(get_method(method).config_class)


def loadable_methods(extra: Sequence[str] = ()) -> list[str]:
    """Every registered method and plugin that loads (a broken plugin is reported when it is
    chosen, not on every command), then ``extra`` (which must load)."""
    from benchmark.methods import get_method, method_names

    names = []
    for name in method_names():
        try:
            get_method(name)
        except BenchmarkError:
            continue
        names.append(name)
    for name in extra:
        get_method(name)
    return list(dict.fromkeys([*names, *extra]))


def all_method_parameters(extra: list[str] = ()) -> dict[str, list[str]]:
    """Parameter name -> the methods that have it (the registered ones and ``extra``, e.g.
    methods named by import strings)."""
    owners: dict[str, list[str]] = {}
    for name in loadable_methods(extra):
        for p in method_parameters(name):
            owners.setdefault(p.name, []).append(name)
    return owners


def _named_methods(layer: Overrides) -> list[str]:
    """The methods a layer names (``method`` and the entries of ``methods``), as given."""
    named = [layer.options.get("method")]
    methods = layer.options.get("methods")
    named += methods if isinstance(methods, (list, tuple)) else str(methods or "").split(",")
    return [base_method(str(entry).strip()) for entry in named if entry and str(entry).strip()]


def refuse_code_from_files(layers: list[Overrides]) -> None:
    """A file (``--config``, a resumed run's ``config.yaml``) may not name code to import: an
    import string ``package.module:Class`` (a method, a metric of ``--metrics.extra``, or
    ``package.module:build`` as the model) must also be given on the command line."""
    from benchmark.core.registry import is_import_string
    from benchmark.models import is_model_import_string

    def code(layer: Overrides) -> list[tuple[str, str]]:
        """``(option, import string)`` of every piece of code the layer names."""
        named = [("--method", name) for name in _named_methods(layer) if is_import_string(name)]
        model = layer.options.get("model")
        if isinstance(model, str) and is_model_import_string(model.strip()):
            named.append(("--model", model.strip()))
        named += [("--metrics.extra", name) for name in layer.extra_names() if is_import_string(name)]
        return named

    typed = {item for layer in layers if layer.source == "command line" for item in code(layer)}
    for layer in layers:
        for option, name in code(layer):
            if (option, name) not in typed:
                alternative = f" (or --methods ...,{name})" if option == "--method" else ""
                raise BenchmarkError(
                    f"{layer.source}: names code to import ({name}); a settings file cannot run code, so give it "
                    f"on the command line: {option} {name}{alternative}"
                )


@dataclass
class RunConfig:
    """Fully resolved and validated settings of a run (of one or several methods)."""

    options: RunOptions
    method_configs: dict[str, Any]  # method name -> its validated MethodConfig
    metrics: dict[str, Any]
    sources: list[str] = field(default_factory=list)

    @property
    def method_config(self):
        """The config of the run's method (``options.method``)."""
        return self.method_configs[self.options.method]

    def to_dict(self, method: str | None = None) -> dict[str, Any]:
        """The resolved config of ``method`` in the config-file format (re-usable with
        ``--config``)."""
        method = method or self.options.method
        options = {f.name: getattr(self.options, f.name) for f in fields(self.options)}
        options.pop("method")
        options.pop("methods")
        options.pop("resume")
        model = {key: options.pop(f"model_{key}" if key != "name" else "model") for key in MODEL_KEYS}
        wandb = {key: options.pop(f"wandb_{key}") for key in WANDB_KEYS}
        method_section = {"name": base_method(method), **asdict(self.method_configs[method])}
        return {"method": method_section, "model": model, **options, "wandb": wandb, "metrics": dict(self.metrics)}

    def to_table_dict(self) -> dict[str, Any]:
        """The resolved config of a ``table`` run: the methods and each one's parameters."""
        single = self.to_dict(self.options.method)
        single.pop("method")
        parameters: dict[str, Any] = {}
        for config in self.method_configs.values():
            for key, value in asdict(config).items():
                parameters.setdefault(key, value)  # equal across methods unless a default differs
        return {"methods": list(self.method_configs), "method": parameters, **single}


def resolve(layers: list[Overrides], several: bool = False, command: CommandOptions | None = None) -> RunConfig:
    """Merge ``layers`` (lowest precedence first) and validate everything.

    The run uses the method named by ``method``, or with ``several`` (``table``) the list
    ``methods``. Method parameters from the command line must belong to one of them; from a
    file, to any registered method. ``command``'s own defaults lie under every layer.
    """
    from benchmark.methods import get_method

    refuse_code_from_files(layers)
    options_raw: dict[str, Any] = dict(command.defaults) if command is not None else {}
    for layer in layers:
        options_raw.update(layer.options)
    option_types = {p.name: p for p in option_parameters()}
    options = RunOptions(**{k: _option_value(k, v, option_types[k].annotation) for k, v in options_raw.items()})
    from benchmark.devices import device_defaults

    options.validate(output_folder=command is None or command.takes("output"))
    options = dataclasses.replace(options, **device_defaults(options))
    if several:
        if not options.methods:
            raise BenchmarkError("table needs --methods, e.g. --methods lots,gradcam,random")
        if len(set(options.methods)) != len(options.methods):
            raise BenchmarkError(f"--methods names a method twice: {','.join(options.methods)}")
        options.method = options.methods[0]
    entries = options.methods if several else [options.method]
    variants = {entry: split_variant(entry) for entry in entries}  # "lots:target=class" -> lots
    selected = list(dict.fromkeys(base for base, _ in variants.values()))
    for name in selected:
        get_method(name)  # unknown method: clear error
    from benchmark.models import check_model_choice

    # unknown model, not installed, no normalization: clear errors before any model work
    check_model_choice(options.model, options.model_weights, options.model_mean, options.model_std)

    owners = all_method_parameters(selected)
    method_values: dict[str, tuple[Any, str]] = {}
    for layer in layers:
        for key, value in layer.method.items():
            users = [m for m in owners.get(key, []) if m in selected]
            if key not in owners:
                raise BenchmarkError(
                    f"{layer.source}: no method has a parameter {key!r}; "
                    f"{', '.join(selected)} take(s): {', '.join(_names(selected))}"
                )
            if not users and layer.source == "command line":
                raise BenchmarkError(
                    f"--method.{key} does not apply to {', '.join(selected)} "
                    f"(it is a parameter of {', '.join(owners[key])}); "
                    f"{', '.join(selected)} take(s): {', '.join(_names(selected))}"
                )
            method_values[key] = (value, layer.source)

    metrics = resolve_metrics(layers)
    method_configs = {}
    for entry, (base, fixed) in variants.items():
        own = {p.name for p in method_parameters(base)}
        unknown = sorted(set(fixed) - own)
        if unknown:
            raise BenchmarkError(
                f"--methods {entry}: {base} has no parameter {', '.join(unknown)}; it takes: {', '.join(sorted(own))}"
            )
        values = {**method_values, **{k: (v, f"--methods {entry}") for k, v in fixed.items()}}
        method_configs[entry] = method_config(base, values)
    return RunConfig(
        options=options,
        method_configs=method_configs,
        metrics=metrics,
        sources=[layer.source for layer in layers],
    )


def _option_value(name: str, value: Any, annotation: Any) -> Any:
    from benchmark.models.registry import RANDOM_WEIGHTS

    if name == "model_weights" and isinstance(value, str) and value.strip().lower() == RANDOM_WEIGHTS:
        return RANDOM_WEIGHTS  # the word for random weights (not "no value", as for other options)
    flag = "--" + name.replace("_", ".", 1) if name.startswith("model_") else f"--{name.replace('_', '-')}"
    return coerce(value, annotation, flag)


def _names(methods: list[str]) -> list[str]:
    return sorted({p.name for m in methods for p in method_parameters(m)})


def method_config(method: str, values: dict[str, tuple[Any, str]]):
    """The validated config object of ``method`` from the values that apply to it."""
    from benchmark.methods import get_method

    cls = get_method(method).config_class
    params = {p.name: p for p in dataclass_parameters(cls)}
    kwargs = {
        key: coerce(value, params[key].annotation, f"--method.{key}")
        for key, (value, _) in values.items()
        if key in params
    }
    try:
        config = cls(**kwargs)
        config.validate()
    except (ValueError, TypeError) as error:  # a plugin's own checks: one error line too
        raise BenchmarkError(f"--method {method}: {error}") from None
    return config
