"""An offline tokenizer and processor for tiny models (no hub download).

Real PaliGemma checkpoints bring their own Gemma tokenizer; tests and the embedded demo have no network, so they use
a byte-level BPE trained in memory on a small spatial-QA corpus. Byte-level means nothing is ever `<unk>` (newline,
units, unusual words all encode); digits are split one by one so numbers tokenize the same way everywhere.
`PaliGemmaProcessor` wraps it and adds `<image>`, the 1,024 `<locXXXX>` and 128 `<segXXX>` tokens, so the model's
vocabulary must be at least `len(processor.tokenizer)`.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PaliGemmaProcessor, PreTrainedTokenizerFast, SiglipImageProcessor

SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>"]

# Words that QA templates, captions and general VQA use; the BPE merges follow them, so prompts stay short.
_CORPUS = """
Which point is closer to the camera? Which is farther from the camera? The first point. The second point.
What is the 3D coordinate of the point in meters? How far is the red box from the blue chair?
How tall is the table? How wide is the sofa? How long is the bed? What is the height of the lamp?
Is the cup to the left of the plate? Is the chair in front of the desk? Is the lamp above the bed?
Yes No True False left right above below behind in front of closer farther nearer taller shorter wider
How many objects are within 2 meters of the camera? Count the chairs. Which object is the largest?
If you stand at the door facing the window, is the table on your left or right? Describe the image.
A room with a table, a chair, a sofa, a lamp, a bed, a box, a plant, a shelf, a door and a window.
Options: A. B. C. D. (a) (b) (c) (d) 1. 2. 3. 4. I. II. III. IV. Answer with the option's letter.
meters centimeters feet inches m cm ft in 0.61m -0.20m 1.17m the distance is about 1.27 m.
The object faces left, right, toward the camera, away from the camera. Its orientation is 90 degrees.
red green blue yellow purple orange white black gray brown pink cyan box boxes drawn outlined
point pixel depth order query located at coordinates x y z position direction vector size
"""


def build_tokenizer(vocab_size: int = 1024, extra_texts: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE in memory (deterministic for a given corpus) and wrap it for transformers.

    The pair template marks the answer (second sequence) with token type 1, which is how PaliGemmaProcessor
    separates prefix (bidirectional attention, no loss) from suffix (causal, loss).
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [line for line in _CORPUS.splitlines() if line.strip()] + list(extra_texts)
    tok.train_from_iterator(corpus, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A:0", pair="$A:0 $B:1")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<eos>",
        bos_token="<bos>",
        unk_token="<unk>",
        padding_side="right",
    )


def build_processor(image_size: int, patch_size: int = 14, vocab_size: int = 1024) -> PaliGemmaProcessor:
    """Processor for a tiny model: SigLIP preprocessing at `image_size` and the offline tokenizer."""
    image_processor = SiglipImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    image_processor.image_seq_length = (image_size // patch_size) ** 2
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=build_tokenizer(vocab_size))
