"""Tokenizers built in memory, for the tiny random-initialised models that tests and CPU benchmarks run offline.

Production loads each model's own tokenizer from its hub id; nothing here is used on that path. The tokenizers
are trained on the texts the test will feed (tag vocabularies, prompts), so no text becomes `<unk>`.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertTokenizerFast, PreTrainedTokenizerFast


def bpe_tokenizer(corpus: Iterable[str], vocab_size: int = 400) -> PreTrainedTokenizerFast:
    """A lower-casing BPE tokenizer with CLIP's special tokens that wraps every text in <|startoftext|> ...
    <|endoftext|> (CLIP pools the text at the end-of-text token)."""
    bos, eos = "<|startoftext|>", "<|endoftext|>"
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<unk>", bos, eos])
    tok.train_from_iterator(list(corpus) + ["a photo of the \n , . ( )"], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", special_tokens=[(bos, tok.token_to_id(bos)), (eos, tok.token_to_id(eos))]
    )
    tok.decoder = decoders.BPEDecoder()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=77,
    )


def wordpiece_tokenizer(corpus: Iterable[str], vocab_size: int = 400) -> BertTokenizerFast:
    """A BERT-style (WordPiece, [CLS] ... [SEP], '.'-separated phrases) tokenizer, as GroundingDINO expects."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=special)
    tok.train_from_iterator(list(corpus) + [". , ( )"], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    tok.decoder = decoders.WordPiece()
    return BertTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=256,
    )
