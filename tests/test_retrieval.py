"""The near-duplicate retrieval check (qtorch.eval.retrieval): how the candidates are built and how rank agreement
with the float32 ranking is scored."""
import pytest
import torch

from qtorch.eval.retrieval import near_duplicates, ranking_agreement

SETS = {"a": ("the cat sat on the mat", "a dog ran across the busy road"), "b": ("one two three four",)}


def test_near_duplicates_are_distinct_one_word_edits_from_their_own_set():
    variants = near_duplicates(SETS, variants=4, seed=0)
    assert len(variants) == 3 * 4 and variants == near_duplicates(SETS, variants=4, seed=0)
    sentences = [s for group in SETS.values() for s in group]
    for i, s in enumerate(sentences):
        own = variants[4 * i: 4 * i + 4]
        assert len(set(own)) == 4 and s not in own
        vocabulary = {w for group in SETS.values() if s in group for w in " ".join(group).split()}
        for v in own:
            a, b = s.split(), v.split()
            assert set(b) <= vocabulary
            if len(b) == len(a) - 1:  # deletion: a minus one word
                assert any(a[:j] + a[j + 1:] == b for j in range(len(a)))
            else:  # a swap of neighbours or a replacement: at most two positions differ, same length
                assert len(b) == len(a) and sum(x != y for x, y in zip(a, b)) <= 2
    with pytest.raises(ValueError, match="fewer than 3 words"):
        near_duplicates({"a": ("too short",)})


def test_ranking_agreement():
    gen = torch.Generator().manual_seed(0)
    queries, candidates = torch.randn(5, 8, generator=gen), torch.randn(20, 8, generator=gen)
    assert ranking_agreement(queries, candidates, queries, candidates) == {"retrieval_top1": 1.0,
                                                                          "retrieval_mrr": 1.0}
    scores = torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(candidates, dim=-1).t()
    order = scores.argsort(dim=1, descending=True)
    # a model whose embedding of query 0 points at fp32's second choice: fp32's best loses rank 1
    moved = queries.clone()
    moved[0] = candidates[order[0, 1]]
    got = ranking_agreement(queries, candidates, moved, candidates)
    cos = [float(torch.nn.functional.cosine_similarity(moved[0], c, dim=0)) for c in candidates]
    rank = 1 + sum(c > cos[int(order[0, 0])] for c in cos)  # fp32's best in the moved query's ranking
    assert rank >= 2
    assert got["retrieval_top1"] == pytest.approx(4 / 5)
    assert got["retrieval_mrr"] == pytest.approx((4 + 1 / rank) / 5)
