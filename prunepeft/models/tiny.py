"""Tiny random-weight backbones with a tokenizer built in code (tests; nothing is downloaded).

The tokenizer is a WordPiece over characters: every lowercase letter, digit and ASCII punctuation
mark is in the vocabulary both as a word start and as a `##` continuation, so any (ASCII-folded)
English text tokenises without [UNK]; a few hundred frequent English words fill the remaining
vocabulary so sequences stay short. Encoder families get BERT-style specials
(`[CLS] a [SEP] b [SEP]` with token_type_ids); roberta gets `<s> a </s></s> b </s>`; decoder
families get `<s> a </s> b </s>` and a dedicated `<pad>` token, mirrored in `config.pad_token_id`.
"""
from __future__ import annotations

import string
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    DebertaV2Config,
    LlamaConfig,
    MistralConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    RobertaConfig,
)

from prunepeft.config.schema import TinyModelConfig
from prunepeft.errors import choice_error
from prunepeft.models.families import get_family

# Specials per tokenizer style, in id order (ids 0..4); roberta's order mirrors the real RoBERTa.
_SPECIALS = {
    "bert": {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"},
    "roberta": {"bos": "<s>", "pad": "<pad>", "eos": "</s>", "unk": "<unk>", "mask": "<mask>"},
    "decoder": {"unk": "<unk>", "bos": "<s>", "eos": "</s>", "pad": "<pad>"},
}
_CONFIGS = {
    "bert": BertConfig,
    "roberta": RobertaConfig,
    "deberta": DebertaV2Config,
    "llama": LlamaConfig,
    "qwen2": Qwen2Config,
    "mistral": MistralConfig,
}
_SUFFIXES = "s es ed ing ly er est ion tion al ness ment able ful less ity ive ize ous".split()
# Frequent English words (beyond single characters), most frequent first.
_WORDS = """
the of and to in is that it was for on are as with he his they be at one have this from or had by
not but what some we can out other were all there when up use your how said an each she which do
their time if will way about many then them would write like so these her long make thing see him
two has look more day could go come did no most my over know than call first who may down side been
now find any new work part take get place made live where after back little only round man year
came show every good me give our under name very through just form much great think say help low
line before turn cause same mean differ move right boy old too does tell sentence set three want air
well also play small end put home read hand port large spell add even land here must big high such
follow act why ask men change went light kind off need house picture try us again animal point
mother world near build self earth father head stand own page should country found answer school
grow study still learn plant cover food sun four thought let keep eye never last door between city
tree cross since hard start might story saw far sea draw left late run while press close night real
life few stop open seem together next white children begin got walk example ease paper often always
music those both mark book letter until mile river car feet care second group carry took rain eat
room friend began idea fish mountain north once base hear horse cut sure watch color face wood main
enough plain girl usual young ready above ever red list though feel talk bird soon body dog family
direct pose leave song measure state product black short numeral class wind question happen complete
ship area half rock order fire south problem piece told knew pass farm top whole king size heard best
hour better true during hundred am remember step early hold west ground interest reach fast five sing
listen six table travel less morning ten simple several vowel toward war lay against pattern slow
center love person money serve appear road map science rule govern pull cold notice voice fall power
town fine certain fly unit lead cry dark machine note wait plan figure star box noun field rest
correct able pound done beauty drive stood contain front teach week final gave green oh quick develop
sleep warm free minute strong special mind behind clear tail produce fact street inch lot nothing
course stay wheel full force blue object decide surface deep moon island foot yet busy test record
boat common gold possible plane age dry wonder laugh thousand ago ran check game shape yes hot miss
brought heat snow bed bring sit perhaps fill east weight language among film movie bad funny boring
""".split()


def _vocab(style: str, size: int) -> dict[str, int]:
    """Specials, then characters and their `##` forms, then suffixes and words, up to `size`."""
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    tokens = list(_SPECIALS[style].values()) + chars + ["##" + c for c in chars]
    tokens += ["##" + s for s in _SUFFIXES] + _WORDS
    vocab: dict[str, int] = {}
    for tok in tokens:
        if len(vocab) >= size:
            break
        vocab.setdefault(tok, len(vocab))
    return vocab


def _style(family: str) -> str:
    if family == "roberta":
        return "roberta"
    return "decoder" if get_family(family).decoder else "bert"


def build_tokenizer(family: str, vocab_size: int = 512, max_length: int = 512) -> PreTrainedTokenizerFast:
    """A deterministic character-level WordPiece tokenizer for a tiny model of `family`."""
    style = _style(family)
    sp = _SPECIALS[style]
    vocab = _vocab(style, vocab_size)
    tok = Tokenizer(models.WordPiece(vocab, unk_token=sp["unk"], max_input_chars_per_word=100))
    # BertNormalizer lower-cases and strips accents, so "Café" -> "cafe" stays in-vocabulary.
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    names = ["input_ids", "attention_mask"]
    if style == "bert":
        single, pair = "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"
        names = ["input_ids", "token_type_ids", "attention_mask"]
    elif style == "roberta":
        single, pair = "<s> $A </s>", "<s> $A </s> </s> $B </s>"
    else:
        single, pair = "<s> $A </s>", "<s> $A </s> $B </s>"
    specials = [s for s in sp.values() if s in (single + pair)]
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(s, vocab[s]) for s in specials]
    )
    named = {f"{k}_token": v for k, v in sp.items()}
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, model_input_names=names, model_max_length=max_length, padding_side="right", **named
    )


def _tiny_value(tiny: Any, key: str) -> int:
    default = getattr(TinyModelConfig(), key)
    return int(getattr(tiny, key, default)) if tiny is not None else int(default)


def build_tiny(model_cfg: Any, num_labels: int, seed: int) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Build a random-weight `*ForSequenceClassification` model and its in-code tokenizer.

    Args:
        model_cfg: a ModelConfig (dataclass or DictConfig) with `family` and an optional `tiny` block.
        num_labels: number of classes; 1 = regression.
        seed: seeds every weight (backbone and head); the global RNG state is left untouched.
    """
    family = get_family(model_cfg.family).name
    if family not in _CONFIGS:
        raise choice_error("tiny model family", family, _CONFIGS)
    tiny = getattr(model_cfg, "tiny", None)
    sizes = {k: _tiny_value(tiny, k) for k in TinyModelConfig.__dataclass_fields__ if k != "dropout"}
    # RoBERTa offsets positions by pad_token_id + 1, so its tokenizer must stop 2 positions early.
    max_len = sizes["max_position_embeddings"] - (2 if family == "roberta" else 0)
    tokenizer = build_tokenizer(family, sizes["vocab_size"], max_len)
    ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in _SPECIALS[_style(family)].items()}
    extra: dict[str, Any] = {"pad_token_id": ids["pad"]}
    if "bos" in ids:
        extra.update(bos_token_id=ids["bos"], eos_token_id=ids["eos"])
    dropout = getattr(tiny, "dropout", None) if tiny is not None else None
    if dropout is not None:
        extra.update({k: float(dropout) for k in ("hidden_dropout_prob", "attention_probs_dropout_prob",
                                                  "attention_dropout", "classifier_dropout", "pooler_dropout")})
    if get_family(family).decoder:
        extra.update(num_key_value_heads=sizes["num_attention_heads"], tie_word_embeddings=False)
    config = _CONFIGS[family](
        **sizes,
        **extra,
        num_labels=num_labels,
        problem_type="regression" if num_labels == 1 else "single_label_classification",
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_config(config)
    model.eval()
    return model, tokenizer
