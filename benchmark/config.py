"""The resolved configuration of a run: built-in defaults, then each
``--config FILE.yaml`` in order, then the command line (later wins).

A config file uses the command line's names (dashes or underscores)::

    method:               # or just `method: lots`
      name: lots
      iterations: 500
    model: efficientnet_lite0
    per_class: 1
    metrics:
      score: max_class

Only registered methods and models can be named; nothing in a file can instantiate a class
(an import string ``package.module:Class`` is refused unless the command line names it too).
A method parameter from a file applies to the selected methods that have it (a thesis
file can hold LOTS and CAM settings); one that no method has is an error, as is any
unknown key.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from benchmark.core.errors import BenchmarkError
from benchmark.params import Parameter, coerce, dataclass_parameters, signature_parameters
from benchmark.variants import base_method, split_variant


@dataclass
class RunOptions:
    """Options of a run other than the method's and the metrics' parameters."""

    method: str = field(default="lots", metadata={"help": "saliency method (see the list below)"})
    methods: list[str] | None = field(
        default=None, metadata={"help": "methods to compare, comma-separated (e.g. lots,gradcam,random)"}
    )
    model: str = field(
        default="efficientnet_lite0",
        metadata={"help": "classifier to explain: a name below, timm:NAME, torchvision:NAME or package.module:build"},
    )
    model_weights: str | None = field(
        default=None,
        metadata={
            "help": "local weights file for --model (a state dict or .safetensors), or none for random "
            "weights (smoke tests only: the numbers mean nothing)"
        },
    )
    model_mean: list[float] | None = field(
        default=None,
        metadata={
            "help": "the model's normalization mean R,G,B (default: the model's own; needed for package.module:build)"
        },
    )
    model_std: list[float] | None = field(
        default=None,
        metadata={
            "help": "the model's normalization std R,G,B (default: the model's own; needed for package.module:build)"
        },
    )
    data: str | None = field(
        default=None,
        metadata={"help": "folder of ImageNet validation images (default: built-in sample photos)"},
    )
    per_class: int | None = field(default=1, metadata={"help": "first N images per class, by file name"})
    limit: int | None = field(default=None, metadata={"help": "evaluate at most N images"})
    classes: list[str] | None = field(
        default=None, metadata={"help": "only these classes (wnids or indices, comma-separated)"}
    )
    ground_truth: str | None = field(
        default=None, metadata={"help": "LOC_val_solution.csv for a flat ILSVRC2012_val_* folder"}
    )
    boxes: str | None = field(
        default=None,
        metadata={
            "help": "bounding boxes for --metrics.extra pointing_game/energy_pointing_game: a CSV in "
            "the LOC_val_solution.csv layout, ImageId = file stem"
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "images per batch (default: 16 on the CPU, 32 on a GPU; float32 LOTS and CAM "
            "numbers depend on it, float64 ones do not)"
        },
    )
    num_workers: int | None = field(
        default=None, metadata={"help": "data loading worker processes (default: 0 on the CPU, 4 per GPU process)"}
    )
    output: str = field(default="runs", metadata={"help": "folder that receives the run folder"})
    seed: int = field(default=0, metadata={"help": "random seed, 0 to 2**32 - 1"})
    threads: int | None = field(
        default=None,
        metadata={
            "help": "torch CPU threads per process (default: torch's choice, usually the cores); float32 "
            "results depend on it, and results.json records it"
        },
    )
    save_maps: bool = field(default=False, metadata={"help": "also write maps.pt with every map"})
    overlay_images: int = field(default=8, metadata={"help": "images in the overlay grid PNG"})
    accelerator: str = field(default="auto", metadata={"help": "cpu, gpu or auto"})
    devices: str = field(default="1", metadata={"help": "number of devices (or 'auto')"})
    num_nodes: int = field(default=1, metadata={"help": "number of machines (DDP, e.g. under SLURM or torchrun)"})
    strategy: Literal["auto", "ddp"] = field(
        default="auto", metadata={"help": "auto (DDP when several devices or nodes) or ddp"}
    )
    ddp_timeout: int = field(
        default=1800, metadata={"help": "seconds a process waits for the others (DDP) before it fails"}
    )
    logger: Literal["wandb", "csv", "none"] = field(
        default="wandb",
        metadata={"help": "wandb (online with an API key, else offline + a `wandb sync` hint), csv or none"},
    )
    log_images: int = field(default=8, metadata={"help": "map overlays logged to W&B"})
    wandb_project: str = field(default="saliency-benchmark", metadata={"help": "W&B project"})
    wandb_entity: str | None = field(default=None, metadata={"help": "W&B entity (user or team)"})
    wandb_group: str | None = field(default=None, metadata={"help": "W&B group (default: the model)"})
    wandb_tags: list[str] | None = field(default=None, metadata={"help": "extra W&B tags, comma-separated"})
    precision: Literal["32", "64", "bf16"] = field(
        default="32",
        metadata={
            "help": "32 (float32), 64 (float64: LOTS maps independent of batch size and processes; "
            "slower) or bf16 (bfloat16 autocast on GPU; changes the numbers, see perf/README.md)"
        },
    )
    execution: Literal["auto", "eager", "channels_last", "compiled"] = field(
        default="auto",
        metadata={
            "help": "how the model's passes run: eager (NCHW, the path before 2026-12), channels_last "
            "(~1.5x faster forwards on a CPU) or compiled (channels_last, and the passes without hooks or "
            "gradients through torch.compile: ~2x; compiles once per run); float32 numbers differ by "
            "rounding; auto = the device's default (compiled with --precision 32 on a CPU, else "
            "channels_last); results.json records the one used"
        },
    )
    quiet: bool = field(default=False, metadata={"help": "no progress bars (the results and notes are printed)"})
    estimate: bool = field(
        default=False,
        metadata={
            "help": "print the expected wall time on this machine (model passes counted on one image, timed "
            "on a few) and stop: nothing is run or written"
        },
    )
    allow_tf32: bool = field(
        default=False,
        metadata={
            "help": "let CUDA float32 convolutions and matmuls use TF32 (faster on Ampere and later, ~1e-3 "
            "relative error; off: --precision 32 is float32); results.json records it"
        },
    )
    resume: str | None = field(
        default=None,
        metadata={
            "help": "finish a killed run: its run folder (test) or table folder (table); the run's "
            "settings are the defaults, and options that change results must not differ"
        },
    )

    def validate(self, output_folder: bool = True) -> None:
        """Check every value (before any model work); ``output_folder``: whether ``--output`` is
        the command's folder (``targets`` writes a file and does not take the run's folder)."""
        for name in ("per_class", "limit", "batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise BenchmarkError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
        if self.num_workers is not None and self.num_workers < 0:
            raise BenchmarkError(f"--num-workers must be >= 0, got {self.num_workers}")
        if self.overlay_images < 0:
            raise BenchmarkError(f"--overlay-images must be >= 0, got {self.overlay_images}")
        from benchmark.devices import validate_device_options

        validate_device_options(self)
        if self.log_images < 0:
            raise BenchmarkError(f"--log-images must be >= 0, got {self.log_images}")
        if not 0 <= self.seed < 2**32:
            raise BenchmarkError(f"--seed must be between 0 and 2**32 - 1 (4294967295), got {self.seed}")
        if output_folder:
            check_output_folder(self.output)
        from benchmark.models.registry import RANDOM_WEIGHTS

        for name in ("model_mean", "model_std"):
            value = getattr(self, name)
            flag = f"--model.{name[len('model_') :]}"
            if value is not None and (len(value) != 3 or not all(math.isfinite(v) for v in value)):
                raise BenchmarkError(f"{flag} must be three finite numbers R,G,B (e.g. 0.485,0.456,0.406), got {value}")
            if name == "model_std" and value is not None and min(value) <= 0:
                raise BenchmarkError(f"--model.std must be three numbers > 0 (e.g. 0.229,0.224,0.225), got {value}")
        if self.model_weights not in (None, RANDOM_WEIGHTS) and not Path(self.model_weights).expanduser().is_file():
            raise BenchmarkError(
                f"--model.weights {self.model_weights}: file does not exist; pass a state dict saved with torch.save"
            )
        if not str(self.wandb_project).strip():
            raise BenchmarkError("--wandb.project must not be empty; name a W&B project (default: saliency-benchmark)")
        if self.threads is not None and self.threads < 1:
            raise BenchmarkError(f"--threads must be >= 1 (or left out for torch's default), got {self.threads}")
        if self.execution == "compiled" and self.precision != "32":
            raise BenchmarkError(
                f"--execution compiled compiles float32 forwards; with --precision {self.precision} use "
                "--execution channels_last (or auto)"
            )


def check_output_folder(path: str, option: str = "--output") -> None:
    """``path`` is a folder that exists or can be made (its nearest existing ancestor is a
    writable folder): checked before any model work, so a typo does not cost a model build."""
    import os

    for candidate in [Path(path), *Path(path).parents]:
        if candidate.is_symlink() and not candidate.exists():
            raise BenchmarkError(
                f"{option} {path}: {candidate} is a broken symbolic link; pass a folder that can be made"
            )
        if candidate.exists():
            if not candidate.is_dir():
                raise BenchmarkError(f"{option} {path}: {candidate} is a file, not a folder; pass a folder")
            if not os.access(candidate, os.W_OK | os.X_OK):
                raise BenchmarkError(f"{option} {path}: {candidate} is not writable; pass a folder you can write to")
            _check_folders_can_be_made_in(candidate, path, option)
            return


def _check_folders_can_be_made_in(folder: Path, path: str, option: str) -> None:
    """Make and remove a folder in ``folder``: ``os.access`` lets root write anywhere, also in
    /proc or /sys, where no folder can be made (mkdir fails with ENOENT or EACCES)."""
    import os
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=".benchmark-check-", dir=folder))
    except OSError as error:
        raise BenchmarkError(
            f"{option} {path}: no folder can be made in {folder} ({error.strerror}); pass a folder you can write to"
        ) from None


#: The keys of the ``wandb:`` section of a config file (``--wandb.<key>`` on the command line).
WANDB_KEYS = ("project", "entity", "group", "tags")
#: The keys of the ``model:`` section of a config file (``--model``, ``--model.<key>``).
MODEL_KEYS = ("name", "weights", "mean", "std")


def option_parameters() -> list[Parameter]:
    return dataclass_parameters(RunOptions)


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


def metric_parameters() -> list[Parameter]:
    from benchmark.metrics.scorer import SaliencyScorer

    return signature_parameters(SaliencyScorer.__init__)


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
        extra = layer.metrics.get("extra") or []
        for name in extra.split(",") if isinstance(extra, str) else extra:
            if isinstance(name, str) and is_import_string(name.strip()):
                named.append(("--metrics.extra", name.strip()))
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
class Overrides:
    """Raw values from one source (a config file or the command line)."""

    source: str
    options: dict[str, Any] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


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


def _normalize_key(key: Any, source: str) -> str:
    if not isinstance(key, str):
        raise BenchmarkError(f"{source}: config keys must be strings, got {key!r}")
    return key.replace("-", "_")


def read_config_file(path: str) -> Overrides:
    """Parse one YAML config file into overrides (safe_load: plain data only)."""
    file = Path(path)
    if not file.is_file():
        raise BenchmarkError(f"--config {path}: file does not exist")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise BenchmarkError(f"--config {path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"--config {path}: expected a mapping of option: value")
    overrides = Overrides(source=f"--config {path}")
    known = {p.name for p in option_parameters()}
    for raw_key, value in data.items():
        key = _normalize_key(raw_key, path)
        if key in ("method", "model") and isinstance(value, dict):
            section = {_normalize_key(k, path): v for k, v in value.items()}
            if "name" in section:
                overrides.options[key] = section.pop("name")
            if key == "model":
                for model_key in MODEL_KEYS[1:]:
                    if model_key in section:
                        overrides.options[f"model_{model_key}"] = section.pop(model_key)
                if section:
                    raise BenchmarkError(
                        f"--config {path}: unknown model key(s) {sorted(section)}; use {', '.join(MODEL_KEYS)}"
                    )
            else:
                overrides.method.update(section)
        elif key == "wandb" and isinstance(value, dict):
            section = {_normalize_key(k, path): v for k, v in value.items()}
            unknown = sorted(set(section) - set(WANDB_KEYS))
            if unknown:
                raise BenchmarkError(f"--config {path}: unknown wandb key(s) {unknown}; use {', '.join(WANDB_KEYS)}")
            overrides.options.update({f"wandb_{k}": v for k, v in section.items()})
        elif key == "metrics":
            if not isinstance(value, dict):
                raise BenchmarkError(f"--config {path}: 'metrics' must be a mapping")
            overrides.metrics.update({_normalize_key(k, path): v for k, v in value.items()})
        elif key in known:
            overrides.options[key] = value
        else:
            raise BenchmarkError(
                f"--config {path}: unknown key {raw_key!r}; valid keys: method, model, metrics, wandb, "
                + ", ".join(
                    sorted(
                        known
                        - {
                            "method",
                            "model",
                            *(f"model_{k}" for k in MODEL_KEYS[1:]),
                            *(f"wandb_{k}" for k in WANDB_KEYS),
                        }
                    )
                )
            )
    return overrides


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

    metric_types = {p.name: p for p in metric_parameters()}
    metrics: dict[str, Any] = {p.name: p.default for p in metric_types.values()}
    for layer in layers:
        for key, value in layer.metrics.items():
            if key not in metric_types:
                raise BenchmarkError(
                    f"{layer.source}: unknown metrics parameter {key!r}; valid: {', '.join(metric_types)}"
                )
            metrics[key] = coerce(value, metric_types[key].annotation, f"--metrics.{key}")

    from benchmark.metrics.scorer import SaliencyScorer

    SaliencyScorer(**metrics)  # validates ranges
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
