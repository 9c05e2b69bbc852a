"""`prunepeft <command> [overrides]`: a thin dispatcher to one Hydra app per command.

Before handing over to Hydra, the overrides are parsed by Hydra's own parser and composed once
(in a multirun: every sweep value once) so that a bad override (unknown group option, unknown
key, wrong type) ends with one clear message and exit code 2 instead of Hydra's exit code 1.
Everything else (sweeps, `--cfg`, `--info`, shell completion) is Hydra's.

Nothing here imports torch or transformers before a command runs: `--help`, `<command> --help`,
`--cfg`, `--info`, `--version` and every TAB completion go through `_hydra_app`, the command's Hydra
app without the command's module, so each answers in a fraction of a second (a completion that
imported torch took 13-28 s).
"""
from __future__ import annotations

import dataclasses
import importlib
import os
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


def _parse(overrides: list[str], config_loader=None) -> list:
    """Parse overrides with Hydra's own parser (sweeps, `range()`, `choice()`, `glob()`, ...).

    Raises:
        UserError: naming the override Hydra cannot parse.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        # The config loader lets `glob()` see a group's options.
        return OverridesParser.create(config_loader=config_loader).parse_overrides(overrides)
    except OverrideParseException as err:
        raise UserError(str(err).strip().splitlines()[0]) from None


def _trials(parsed: list, multirun: bool) -> list[list[str]]:
    """Override lists to compose: in a multirun, every value of each sweep once (the others at their
    first value), so a bad value anywhere is caught before any job runs without composing the whole
    cross product. Outside a multirun the overrides go to Hydra as typed (it rejects a sweep there)."""
    if not multirun:
        return [[o.input_line for o in parsed]]
    variants = []
    for o in parsed:
        if o.is_sweep_override() and o.is_discrete_sweep():
            key = o.get_key_element()
            variants.append([f"{key}={value}" for value in o.sweep_string_iterator()] or [o.input_line])
        elif o.is_sweep_override():  # interval(): only optimising sweepers sample it; they check it
            variants.append([])
        else:
            variants.append([o.input_line])
    first = [v[0] for v in variants if v]
    trials = [first]
    for i, values in enumerate(variants):
        for alt in values[1:]:
            trial = [v[0] for v in variants if v]
            trial[sum(1 for v in variants[:i] if v)] = alt
            trials.append(trial)
    return trials


def is_multirun(args: list[str]) -> bool:
    """True for `-m` / `--multirun` (Hydra's flags)."""
    return "-m" in args or "--multirun" in args


def validate_overrides(command: str, overrides: list[str]) -> str | None:
    """Compose the command's config with `overrides`; return an error message or None.

    Overrides are parsed by Hydra's parser; in a multirun (`-m`) each sweep value is composed and
    checked once. Hydra's own overrides (`hydra.*`, `hydra/launcher=...`) are left to Hydra.

    In a multirun, what Hydra cannot compose (a typo in a key, an unknown group option, a value of
    the wrong type) stops the sweep at once: Hydra would stop it anyway, at that job. A value that
    composes but the command refuses (an impossible budget, an unknown method) fails only its own
    jobs: they run, fail with the one-line reason (recorded in the sweep summary), and the others
    run; a warning names them now. Only when every value is refused does the sweep stop here.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from prunepeft.config.schema import register_configs

    register_configs()
    flags = [o for o in overrides if o.startswith("-")]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="prunepeft.conf", version_base="1.3"):
            plain = [o for o in overrides if not o.startswith("-")]
            parsed = _parse(plain, GlobalHydra.instance().config_loader())
            trials = _trials([o for o in parsed if not o.is_hydra_override()], is_multirun(flags))
            swept = {o.get_key_element() for o in parsed if o.is_sweep_override() and not o.is_hydra_override()}
            configs = [compose(config_name=command, overrides=trial) for trial in trials]
    except UserError as err:
        return f"bad override for `prunepeft {command}`: {err}"
    except Exception as err:  # Hydra raises several types; all mean "bad override"
        return f"bad override for `prunepeft {command}`: {_explain(err, command)}"
    finally:
        GlobalHydra.instance().clear()
    # The command's own cheap checks (unknown method, strategy, budget ...) before any directory exists.
    check = getattr(importlib.import_module(f"prunepeft.commands.{command}"), "validate", None)

    refused = []
    for trial, cfg in zip(trials, configs):
        scales = cfg.get("extra", {}).get("scales")  # the table presets' `scale` knob
        if scales is not None and str(cfg.get("scale")) not in scales:
            return (f"scale={cfg.get('scale')} is not a scale of the table presets; valid choices: "
                    f"{', '.join(scales)}")
        preset = cfg.get("extra", {}).get("preset")
        if preset and not is_multirun(flags):  # a table preset is a sweep: without -m it would be one run
            return (f"experiment={preset} is a sweep preset: add -m (prunepeft {command} -m experiment={preset} "
                    f"scale=...), or use `make {preset}`")
        try:
            check_names(cfg)  # a name Hydra makes a job directory of: refused before any job, always
        except UserError as err:
            return str(err)
        try:
            if check is not None:
                check(cfg)
        except UserError as err:
            if not is_multirun(flags):
                return str(err)
            refused.append((trial, str(err)))
    if refused and len(refused) == len(configs):
        return refused[0][1]  # nothing of the sweep would run
    for trial, err in refused:
        values = " ".join(o for o in trial if o.partition("=")[0] in swept) or " ".join(trial)
        print(f"warning: the jobs with {values} will fail: {err} (the other jobs run)", file=sys.stderr)
    return None


def _explain(err: Exception, command: str) -> str:
    """What Hydra could not compose, told by the exception's type (never by its message text):

    - `MissingConfigException` (an unknown group option): the option and the group's options, from
      its `missing_cfg_file` and `options` (Hydra's wording, without its config search path);
    - `ConfigCompositionException` caused by omegaconf's `ConfigAttributeError`/`ConfigKeyError` on
      a structured config (an unknown key; Hydra only suggests `+key=`): the schema's valid keys,
      from the cause's `key`, `full_key` and `object_type`;
    - caused by another omegaconf error with a `full_key` (`ValidationError`: a value of the wrong
      type): Hydra's line and omegaconf's, e.g. "Error merging override seed=abc (Value 'abc' ...)";
    - anything else: the error as Hydra words it.
    """
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    if isinstance(err, MissingConfigException):
        group = err.missing_cfg_file.rpartition("/")[0]
        where = f"In {command!r}: " if group and "/" not in group else ""  # a group of the command's defaults
        if err.options is None:
            return f"{where}Could not load {err.missing_cfg_file!r}."
        options = "".join(f"\n\t{o}" for o in err.options)
        return f"{where}Could not find {err.missing_cfg_file!r}" + (f"\n\nAvailable options in {group!r}:{options}"
                                                                    if options else "")
    cause = err.__cause__
    if not (isinstance(err, ConfigCompositionException) and isinstance(cause, OmegaConfBaseException)
            and getattr(cause, "full_key", None)):
        return str(err).strip()
    schema = getattr(cause, "object_type", None)
    if (isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and dataclasses.is_dataclass(schema)
            and cause.key not in {f.name for f in dataclasses.fields(schema)}):
        parent = cause.full_key.rpartition(".")[0]
        keys = ", ".join(sorted(f.name for f in dataclasses.fields(schema)))
        return f"unknown key {cause.full_key!r}; valid keys{f' of {parent!r}' if parent else ''}: {keys}"
    # Hydra's own line ("Error merging override seed=abc") and the first line of omegaconf's message
    # (the rest is omegaconf's full_key/object_type block)
    return f"{str(err).splitlines()[0]} ({str(cause).splitlines()[0]})"


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


def command_help(command: str) -> str:
    """`prunepeft <command> --help`: its page in `conf/hydra/help/<command>.yaml`, with the config
    groups of the command's own defaults list (`$APP_CONFIG_GROUPS`) and their options.

    Rendered here, not by Hydra: Hydra's help lists every group of the search path by deep-copying
    its config repository once per group (about a second, and export's page listed the model and
    strategy groups it never reads).
    """
    import string
    from importlib import resources

    import yaml

    conf = resources.files("prunepeft.conf")
    page = yaml.safe_load(conf.joinpath("hydra", "help", f"{command}.yaml").read_text(encoding="utf-8"))
    defaults = yaml.safe_load(conf.joinpath(f"{command}.yaml").read_text(encoding="utf-8")).get("defaults", [])
    groups = sorted(next(iter(entry)) for entry in defaults
                    if isinstance(entry, dict) and not next(iter(entry)).startswith(("override ", "hydra/")))
    lines = []
    for group in groups:
        options = sorted(p.name[:-len(".yaml")] for p in conf.joinpath(group).iterdir() if p.name.endswith(".yaml"))
        lines.append(f"{group}: {', '.join(options)}")
    text = page["template"].replace("${hydra.help.header}", page["header"]).replace("${hydra.help.footer}",
                                                                                     page["footer"])
    # As Hydra does: string.Template on the page ($$ is a literal $).
    return string.Template(text).safe_substitute(APP_CONFIG_GROUPS="\n".join(lines), APP_NAME=page["app_name"])


def _hydra_app(command: str):
    """The Hydra app of `command` (same config, search path and job name) without importing
    `prunepeft.commands.<command>`, for the flags that never run it: help, `--cfg`, `--info`,
    shell completion.

    Hydra locates the config and names the job from the task function's module name, a string:
    pointing it at the command's module gives exactly the app that module's `hydra_entry` builds.
    """
    import hydra

    from prunepeft.run import sweep  # noqa: F401 - registers ${pp.tag:}, which hydra.sweep.subdir uses
    from prunepeft.config.schema import register_configs

    register_configs()

    def no_run(cfg) -> None:  # Hydra answers these flags itself and never calls the task
        raise RuntimeError(f"prunepeft {command}: the help-only app cannot run a command")

    no_run.__module__ = f"prunepeft.commands.{command}"
    return hydra.main(config_path="../conf", config_name=command, version_base="1.3")(no_run)


def _complete(args: list[str]) -> None:
    """`prunepeft -sc install=bash|zsh|fish` and the shell's `-sc query=...` calls.

    Hydra's completion knows one app; here the first word after `prunepeft` is the command. The
    query strips it from COMP_LINE and hands the rest to that command's Hydra app, so
    `prunepeft search task=<TAB>` lists the tasks; a partial first word completes the command names.
    """
    action = next((a for a in args if "=" in a), "")
    if action.startswith("query="):
        line = os.environ.get("COMP_LINE", "")
        words = line.split()
        complete_first = len(words) >= 2 and (line.endswith(" ") or len(words) > 2)
        if len(words) < 2 or not complete_first:
            prefix = words[1] if len(words) == 2 else ""
            print(" ".join(c for c in [*COMMANDS, "--help", "--version"] if c.startswith(prefix)))
            return
        command = words[1]
        if command not in COMMANDS:
            return
        os.environ["COMP_LINE"] = line.replace(command, "", 1)
        os.environ["COMP_POINT"] = str(len(os.environ["COMP_LINE"]))
    else:
        command = "search"  # any app prints the same install/uninstall script, bound to `prunepeft`
    sys.argv = ["prunepeft", "-sc", *args]
    _hydra_app(command)()


# The config keys whose values become directory or file names of a run (conf/*.yaml hydra.run.dir,
# the experiment presets' run names, the export's default name): checked before Hydra makes a directory.
NAME_KEYS = ("task.name", "model.name", "strategy.name", "method", "extra.source")


def check_names(cfg: Any) -> None:
    """`check_plain_name` for every key of `NAME_KEYS` that `cfg` (a DictConfig) sets.

    Raises:
        UserError: the first key whose value is not a plain name.
    """
    from omegaconf import OmegaConf

    from prunepeft.run.layout import check_plain_name

    for key in NAME_KEYS:
        try:
            value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
        except Exception:  # noqa: BLE001 - an interpolation that cannot resolve yet: not a name to check
            continue
        if value is not None and not OmegaConf.is_config(value):
            check_plain_name(key, value)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `prunepeft` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else EXIT_USER_ERROR)
    if argv[0] in ("--version", "-V"):
        from prunepeft.version import __version__

        print(f"prunepeft {__version__}")
        sys.exit(0)
    if argv[0] in ("-sc", "--shell-completion"):
        _complete(argv[1:])
        sys.exit(0)
    command, rest = argv[0], _flag_options(argv[0], argv[1:])
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}; valid choices: {', '.join(COMMANDS)}\n", file=sys.stderr)
        print(usage(), file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    if not any(flag in rest for flag in _HYDRA_FLAGS):
        from prunepeft.plugins import load as load_plugins

        load_plugins()  # entry-point plug-ins and the arms, before any config is composed
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
    multirun = is_multirun(rest) and not any(flag in rest for flag in _HYDRA_FLAGS)
    if multirun:
        from prunepeft.run.sweep import swept_dirname_override

        rest = [*rest, *swept_dirname_override(rest)]
    if "-h" in rest or "--help" in rest:
        print(command_help(command).rstrip("\n") + "\n")
        sys.exit(0)
    sys.argv = [f"prunepeft {command}", *rest]
    if any(flag in rest for flag in _HYDRA_FLAGS):
        _hydra_app(command)()  # help, --cfg, --info: no command module, no torch
    else:
        importlib.import_module(f"prunepeft.commands.{command}").hydra_entry()
    if multirun:
        from prunepeft.run.sweep import last_sweep_failures

        failed = last_sweep_failures()
        if failed:
            print(f"error: {failed} job(s) of the sweep failed (see the sweep summary)", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
