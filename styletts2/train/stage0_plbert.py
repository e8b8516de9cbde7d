"""Stage 0, PL-BERT: the phoneme-level ALBERT trained on text (yl4579/PL-BERT's train.ipynb).

The model is StyleTTS2 with its `bert` alone (gin/stage/stage0_plbert.gin). The stage owns
upstream's two prediction heads on the ALBERT's last hidden state:
- `mask_predictor` (hidden -> phoneme symbols): cross-entropy at the masked positions only
  (the masking is the data's, `styletts2/data/plbert_dataset.py`);
- `word_predictor` (hidden -> word classes): cross-entropy at every real position, separators
  included (they are class 0).
Each loss is a mean per sentence, then over the batch (upstream divides the phoneme loss by one
more than the number of sentences with a masked position; here by that number). The total is
their sum; one AdamW steps the ALBERT and both heads together.

Data comes through the trainer's `build_data` hook: text read and phonemized word by word
(`styletts2/data/plbert_text.py`); the training text also gives the word vocabulary
(`styletts2/data/word_vocab.py`), which is saved in the stage state and as the checkpoint's
top-level 'word_vocab' entry, and which a resumed run takes from its checkpoint. The trainer's
checkpoint keeps the ALBERT under ['net']['bert'], which `load_pretrained_parts(model, ('bert',),
plbert_path=...)` loads into a StyleTTS2 (`load_plbert_weights`).
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import gin
import torch
import torch.nn.functional as F
from torch import nn

from styletts2.data.plbert_dataset import MaskedBatch, MaskedPhonemeDataset, collate_masked
from styletts2.data.plbert_text import read_word_sentences
from styletts2.data.readers import corpus_language
from styletts2.data.word_vocab import UNKNOWN_ID, WordVocab
from styletts2.text.symbols import N_SYMBOLS

from . import distributed as dist_utils
from .optim import build_multi_optimizer
from .stage import StepOutput, TrainingContext

logger = logging.getLogger(__name__)

TRAINED = ("bert", "mask_predictor", "word_predictor")


def _sentence_mean(values: torch.Tensor, rows: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean over the sentences that have values of each sentence's mean (rows: sentence of each value)."""
    sums = values.new_zeros(batch_size).index_add(0, rows, values)
    counts = values.new_zeros(batch_size).index_add(0, rows, torch.ones_like(values))
    present = counts > 0
    return (sums[present] / counts[present]).mean()


@gin.configurable
class Stage0PLBert:
    """PL-BERT pre-training (the module docstring says what a step does).

    min_count: words seen fewer times in the training text share the unknown-word class.
    max_words: most word classes (the separator and unknown classes included); None = no cap.
    max_length: longest input in phoneme tokens; longer sentences are cut to a random window (512).
    word_mask_prob, phoneme_mask_prob, replace_prob, mask_token: the masking (plbert_dataset.py).
    transcripts: for list-file data, where the clips' text is (an LJSpeech metadata.csv, or a
        suffix such as '.normalized.txt' of a text file beside each wav); None = their phonemes.
    seed: seed of the masking draws; None = the trainer's seed.
    """

    name = "stage0_plbert"

    def __init__(self, min_count: int = 1, max_words: int | None = None, max_length: int = 512,
                 word_mask_prob: float = 0.15, phoneme_mask_prob: float = 0.1, replace_prob: float = 0.2,
                 mask_token: str = "M", transcripts: str | None = None, seed: int | None = None):
        self.min_count = min_count
        self.max_words = max_words
        self.max_length = max_length
        self.masking = dict(word_mask_prob=word_mask_prob, phoneme_mask_prob=phoneme_mask_prob,
                            replace_prob=replace_prob, mask_token=mask_token)
        self.transcripts = transcripts
        self.seed = seed
        self.vocab: WordVocab | None = None
        self.datasets: list[MaskedPhonemeDataset] = []
        self._log: Callable[[str], None] = logger.info

    # --- data --------------------------------------------------------------------------------

    def build_data(self, path: str, trainer) -> tuple[MaskedPhonemeDataset, list[int], Callable]:
        """The trainer's hook: (dataset, lengths in tokens, collate). The first call reads the
        training text, which also gives the word vocabulary; later calls (validation) use it."""
        self._log = trainer.logger.info
        training = self.vocab is None
        if training and str(path) != str(trainer.train_data):
            raise RuntimeError(f"build_data({path!r}) before the training data ({trainer.train_data!r}): "
                               "the word vocabulary comes from the training text")

        def read():
            return read_word_sentences(path, root=trainer.data_root, transcripts=self.transcripts)

        report = dist_utils.share_from_main(read)  # rank 0 phonemizes; the others wait as long as it takes
        self._log(f"PL-BERT text {path}: {report.summary()}")
        if not report.sentences:
            raise ValueError(f"{path}: no sentence with phonemes to train on")
        if training:
            keys = [k for s in report.sentences for k in s.keys]
            self.vocab = WordVocab.build(keys, self.min_count, self.max_words, language=corpus_language())
            unknown = sum(i == UNKNOWN_ID for i in self.vocab.ids(keys))
            self._log(f"word vocabulary: {len(self.vocab)} classes from {len(set(keys))} distinct words; "
                      f"{unknown / len(keys):.1%} of the {len(keys)} words are unknown "
                      f"(min_count {self.min_count}, max_words {self.max_words})")
        dataset = MaskedPhonemeDataset(report.sentences, self.vocab, max_length=self.max_length,
                                       seed=trainer.seed if self.seed is None else self.seed,
                                       split=0 if training else 1, **self.masking)
        self.datasets.append(dataset)
        return dataset, dataset.lengths(), collate_masked

    # --- set-up --------------------------------------------------------------------------------

    def setup(self, model, ctx: TrainingContext) -> None:
        if self.vocab is None:
            raise RuntimeError("Stage0PLBert needs its word vocabulary: call build_data (the trainer does) first")
        if set(model.nets) != {"bert"}:
            logger.warning("stage 0 trains the bert alone; the model also has %s (bind StyleTTS2.modules = "
                           "('bert',), see gin/stage/stage0_plbert.gin)", sorted(set(model.nets) - {"bert"}))
        self.model, self.ctx = model, ctx
        self._build_heads()

    def _build_heads(self) -> None:
        """The two heads (upstream's MultiTaskModel) and one optimiser over them and the ALBERT."""
        config = self.model.bert.config
        if config.vocab_size != N_SYMBOLS:
            raise ValueError(f"PLBert.vocab_size is {config.vocab_size}; the phoneme table has {N_SYMBOLS} symbols")
        self.heads = nn.ModuleDict({
            "mask_predictor": nn.Linear(config.hidden_size, N_SYMBOLS),
            "word_predictor": nn.Linear(config.hidden_size, len(self.vocab)),
        }).to(self.ctx.device)
        dist_utils.broadcast_module(self.heads)
        # bert at the common rate: stage 2's lower PL-BERT rate is for fine-tuning it.
        self.optimizer = build_multi_optimizer({"bert": self.model.bert, **self.heads}, TRAINED,
                                               bert_lr=None, ft_lr=None, ctx=self.ctx)

    # --- steps ---------------------------------------------------------------------------------

    def _losses(self, batch: MaskedBatch, metrics: bool = False) -> dict[str, torch.Tensor]:
        valid = batch.valid
        masked = batch.masked & valid
        with self.ctx.autocast():
            hidden = self.model.bert(batch.tokens, attention_mask=valid.long())
            # The heads only where a loss reads them (the word head is as wide as the vocabulary).
            token_logits = self.heads.mask_predictor(hidden[masked]).float()
            word_logits = self.heads.word_predictor(hidden[valid]).float()
        out = {}
        word_targets = batch.words[valid]
        out["word_loss"] = _sentence_mean(F.cross_entropy(word_logits, word_targets, reduction="none"),
                                          valid.nonzero()[:, 0], len(batch))
        if masked.any():  # else (a rare tiny batch) there is nothing to predict
            token_targets = batch.labels[masked]
            out["token_loss"] = _sentence_mean(F.cross_entropy(token_logits, token_targets, reduction="none"),
                                               masked.nonzero()[:, 0], len(batch))
            if metrics:
                out["token_acc"] = (token_logits.argmax(-1) == token_targets).float().mean()
        if metrics:
            out["word_acc"] = (word_logits.argmax(-1) == word_targets).float().mean()
        return out

    def train_step(self, batch: MaskedBatch, epoch: int, step: int) -> StepOutput:
        self.model.train()
        losses = self._losses(batch)
        self.optimizer.step_on(sum(losses.values()), TRAINED, losses=losses)
        return StepOutput.of(losses)

    @torch.no_grad()
    def validation_step(self, batch: MaskedBatch, epoch: int) -> dict[str, float]:
        """Both losses, their sum ('loss', what picks best.pth), and the accuracies of the masked
        phonemes and of the words."""
        out = self._losses(batch, metrics=True)
        out["loss"] = out["word_loss"] + out.get("token_loss", 0.0)
        return {k: float(v) for k, v in out.items()}

    # --- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "heads": self.heads.state_dict(),
                "word_vocab": self.vocab.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the checkpoint's vocabulary replaces the one built from today's text (the word
        head's classes must not move), then the heads and the optimiser."""
        saved = WordVocab.from_state_dict(state["word_vocab"])
        if saved.language != self.vocab.language:
            raise ValueError(f"the checkpoint's words were phonemized in {saved.language!r}, this run's in "
                             f"{self.vocab.language!r}: set LANGUAGE = {saved.language!r} to resume it")
        if saved != self.vocab:
            logger.warning("word vocabulary: keeping the checkpoint's %d classes (the text gives %d now)",
                           len(saved), len(self.vocab))
            self.vocab = saved
            for dataset in self.datasets:
                dataset.vocab = saved
            if len(saved) != self.heads.word_predictor.out_features:
                self._build_heads()
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])

    def release_entries(self) -> dict:
        """The vocabulary beside the weights: what the word head's classes are."""
        return {"word_vocab": self.vocab.state_dict()}
