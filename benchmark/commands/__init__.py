"""The commands of ``python -m benchmark``, one module per command.

Each module has ``add_parser(subparsers, extra_methods, extra_metrics)`` (its subcommand and options) and
``run(args) -> int`` (the exit status); a command with run options also has
``run_config(args)``, the resolved :class:`benchmark.config.RunConfig` of its command line.
:mod:`benchmark.cli` lists the modules, builds the parser from them and dispatches.
"""
