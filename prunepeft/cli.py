"""`prunepeft <command> [overrides]`: a thin dispatcher to one Hydra app per command.

Before handing over to Hydra, the overrides are composed once so that a bad override (unknown
group option, unknown key, wrong type) ends with one clear message and exit code 2 instead of
Hydra's exit code 1.
"""
from __future__ import annotations

import dataclasses
import importlib
import sys

from prunepeft.errors import EXIT_USER_ERROR, UserError

COMMANDS: dict[str, str] = {
    "search": "warm-up, iterative pruning of the supernet to a budget, retrain (the main job)",
    "baseline": "train a fixed configuration: fft, head, uniform lora/dora/adapter/houlsby, or a found one",
    "report": "build Tables 2-6 and Figures 1/3 from run outputs",
    "export": "export a found configuration: peft adapters (LoRA/DoRA) or self-contained (with adapters)",
    "predict": "predictions of a finished run (or an export) for a .tsv/.csv/.parquet/.jsonl file",
    "evaluate": "recompute a finished run's metrics on a task split (equal to summary.json's)",
}

# Flags Hydra handles itself; their presence means "don't compose, just run Hydra".
_HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc")


def usage() -> str:
    """The command list printed for `prunepeft`, `prunepeft --help` and unknown commands."""
    lines = ["usage: prunepeft <command> [key=value ...] [-m]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    lines += ["", "`prunepeft <command> --help` lists the config groups and options of a command.",
              "Examples:  prunepeft search task=rte    prunepeft baseline task=sst2 method=lora"]
    return "\n".join(lines)


def _value_variants(override: str) -> list[str]:
    """Split a simple multirun override `key=a,b,c` into `key=a`, `key=b`, `key=c`."""
    if "=" not in override:
        return [override]
    key, value = override.split("=", 1)
    if any(ch in value for ch in "[]()'\"") or "," not in value:
        return [override]
    return [f"{key}={v}" for v in value.split(",")]


def validate_overrides(command: str, overrides: list[str]) -> str | None:
    """Compose the command's config with `overrides`; return an error message or None."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from prunepeft.config.schema import register_configs

    register_configs()
    plain = [o for o in overrides if not o.startswith("hydra") and not o.startswith("-")]
    # Multirun: check each value of a sweep once, the other overrides at their first value.
    variants = [_value_variants(o) for o in plain]
    trials = [[v[0] for v in variants]]
    for i, vs in enumerate(variants):
        for alt in vs[1:]:
            trial = [v[0] for v in variants]
            trial[i] = alt
            trials.append(trial)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="prunepeft.conf", version_base="1.3"):
            configs = [compose(config_name=command, overrides=trial) for trial in trials]
    except Exception as err:  # Hydra raises several types; all mean "bad override"
        return f"bad override for `prunepeft {command}`: {_explain(err)}"
    finally:
        GlobalHydra.instance().clear()
    # The command's own cheap checks (unknown method, strategy, ...) before any directory exists.
    check = getattr(importlib.import_module(f"prunepeft.commands.{command}"), "validate", None)
    if check is not None:
        try:
            for cfg in configs:
                check(cfg)
        except UserError as err:
            return str(err)
    return None


def _explain(err: Exception) -> str:
    """Hydra's message, plus the valid keys when a key is unknown (Hydra only suggests `+key=`)."""
    message = str(err).split("\nConfig search path:")[0].strip()
    cause = err.__cause__
    full_key = getattr(cause, "full_key", None)
    if cause is None or not full_key:
        return message
    detail = str(cause).split("\n")[0]  # e.g. "Key 'lrr' not in 'TrainConfig'", "Value 'abc' ... Float"
    schema = getattr(cause, "object_type", None)
    if "not in" in detail and dataclasses.is_dataclass(schema):
        parent = full_key.rpartition(".")[0]
        keys = ", ".join(sorted(f.name for f in dataclasses.fields(schema)))
        return f"unknown key {full_key!r}; valid keys{f' of {parent!r}' if parent else ''}: {keys}"
    return f"{message.splitlines()[0]} ({detail})"


def _flag_options(command: str, args: list[str]) -> list[str]:
    """`prunepeft export --to peft` (the documented spelling) -> the Hydra override `to=peft`."""
    if command != "export":
        return args
    out, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--to" and i + 1 < len(args):
            out.append(f"to={args[i + 1]}")
            i += 2
            continue
        out.append(f"to={arg[len('--to='):]}" if arg.startswith("--to=") else arg)
        i += 1
    return out


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `prunepeft` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else EXIT_USER_ERROR)
    command, rest = argv[0], _flag_options(argv[0], argv[1:])
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; valid choices: {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    if not any(flag in rest for flag in _HYDRA_FLAGS):
        error = validate_overrides(command, rest)
        if error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
        # The output directory, before Hydra creates it and opens its log there (read-only, a file).
        from prunepeft.commands.common import preflight_output

        try:
            rest = [*rest, *preflight_output(command, rest)]
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)
    module = importlib.import_module(f"prunepeft.commands.{command}")
    sys.argv = [f"prunepeft {command}", *rest]
    module.hydra_entry()


if __name__ == "__main__":
    main()
