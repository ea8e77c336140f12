"""A retrieval check harder than the embedding cosine: do the quantized embeddings rank near-duplicates as fp32 does?

Built from the evaluation sentences (no calibration data): each sentence gets VARIANTS near-duplicates that differ from
it by one word (deleted, swapped with its neighbour, or replaced by a word drawn from another sentence of the same
set; a seeded generator picks the edits). The sentence is the query, every variant of every sentence is a
candidate; both sides are embedded by the model under test. Scores per query q over candidates c: cos(e_q, e_c).
    top-1 agreement = share of queries whose best candidate is fp32's best candidate,
    MRR = mean over queries of 1 / (rank, in the quantized ranking, of fp32's best candidate).
A query's own variants sit close to it (float32 cosine: median 0.986) and fp32's margin between its best and second
candidate has median 0.004, the size of the differences 4-bit weights add: fp32's own ranking is the ground truth.
"""
import random

import torch
import torch.nn as nn
import torch.nn.functional as F

VARIANTS = 4  # near-duplicates per evaluation sentence
SEED = 0


def _edit(words: list[str], vocabulary: list[str], rng: random.Random) -> list[str]:
    """One random one-word edit of words (at least 3 words): delete, swap with the next, or replace."""
    i = rng.randrange(len(words) - 1)
    kind = rng.randrange(3)
    out = list(words)
    if kind == 0:
        del out[i]
    elif kind == 1:
        out[i], out[i + 1] = out[i + 1], out[i]
    else:
        out[i] = rng.choice([w for w in vocabulary if w != words[i]])
    return out


def near_duplicates(sets: dict[str, tuple[str, ...]], variants: int = VARIANTS, seed: int = SEED) -> list[str]:
    """VARIANTS distinct one-word edits of each sentence, in order (sentence 0's variants first), the replacement
    words drawn from the sentence's own set."""
    rng = random.Random(seed)
    out = []
    for sentences in sets.values():
        vocabulary = sorted({w for s in sentences for w in s.split()})
        for s in sentences:
            words = s.split()
            if len(words) < 3:
                raise ValueError(f"sets: sentence {s!r} has fewer than 3 words; a one-word edit would leave too little")
            seen = {s}
            while len(seen) < variants + 1:
                seen.add(" ".join(_edit(words, vocabulary, rng)))
            out += sorted(seen - {s}, key=lambda v: rng.random())
    return out


def ranking_agreement(ref_queries: torch.Tensor, ref_candidates: torch.Tensor, queries: torch.Tensor,
                      candidates: torch.Tensor) -> dict[str, float]:
    """Top-1 agreement and MRR of the quantized ranking (queries (Q, D), candidates (C, D)) against fp32's best
    candidate (ref_queries, ref_candidates)."""
    def scores(q, c):
        return F.normalize(q.double(), dim=-1) @ F.normalize(c.double(), dim=-1).t()  # (Q, C)

    best = scores(ref_queries, ref_candidates).argmax(dim=1)  # (Q,) fp32's best candidate
    quant = scores(queries, candidates)  # (Q, C)
    target = quant.gather(1, best[:, None])  # (Q, 1)
    rank = 1 + (quant > target).sum(dim=1)  # (Q,) position of fp32's best in the quantized ranking
    return {"retrieval_top1": float((rank == 1).double().mean()), "retrieval_mrr": float((1.0 / rank).mean())}


class RetrievalCheck:
    """model -> {retrieval_top1, retrieval_mrr} against the float32 model's ranking; the model embeds with its own
    encode(sentences) (queries and candidates together, shortest first: less padding)."""

    def __init__(self, float_model: nn.Module, queries: list[str], candidates: list[str]):
        self.sentences = sorted(queries + candidates, key=len)  # (Q + C) texts, shortest first
        position = {s: i for i, s in enumerate(self.sentences)}
        self.queries = torch.tensor([position[s] for s in queries])  # (Q,) rows of the queries
        self.candidates = torch.tensor([position[s] for s in candidates])  # (C,) rows of the candidates
        self.reference = self._embed(float_model)  # (Q + C, D) float32

    @torch.no_grad()
    def _embed(self, model) -> torch.Tensor:
        return model.encode(self.sentences).float().cpu()

    def __call__(self, model: nn.Module) -> dict[str, float]:
        out = self._embed(model)
        return ranking_agreement(self.reference[self.queries], self.reference[self.candidates], out[self.queries],
                                 out[self.candidates])
