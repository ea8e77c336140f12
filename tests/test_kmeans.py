import pytest
import torch

from qtorch.quant import fake_quantize, kmeans_dequantize, kmeans_quantize, sqnr_db


@pytest.mark.parametrize("granularity,kw,cb_shape", [
    ("tensor", {}, (16,)),
    ("channel", {}, (8, 16)),
    ("channel", {"axis": 1}, (64, 16)),
    ("group", {"group_size": 16}, (8, 4, 16)),
])
def test_shapes_and_reconstruction(granularity, kw, cb_shape):
    w = torch.randn(8, 64)
    idx, cb = kmeans_quantize(w, 4, granularity=granularity, **kw)
    assert idx.shape == w.shape and idx.dtype == torch.uint8 and int(idx.max()) < 16
    assert cb.shape == cb_shape
    assert bool((cb.diff(dim=-1) >= 0).all())  # sorted codebooks
    w_hat = kmeans_dequantize(idx, cb, granularity=granularity, **kw)
    # Lloyd's algorithm at convergence: every value maps to the nearest centroid of its own codebook.
    per_element = {
        ("tensor", None): lambda c: c.expand(8, 64, 16),
        ("channel", None): lambda c: c[:, None, :].expand(8, 64, 16),
        ("channel", 1): lambda c: c[None, :, :].expand(8, 64, 16),
        ("group", None): lambda c: c.repeat_interleave(16, dim=1),
    }[(granularity, kw.get("axis"))](cb)
    nearest_dist = (w[..., None] - per_element).abs().min(dim=-1).values
    assert torch.allclose((w - w_hat).abs(), nearest_dist)


def test_deterministic_for_a_seed_and_better_than_linear_at_equal_bits():
    w = torch.randn(16, 128) ** 3  # heavy-tailed: non-uniform levels pay off
    a = kmeans_quantize(w, 3, granularity="channel", seed=7)
    b = kmeans_quantize(w, 3, granularity="channel", seed=7)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    km = sqnr_db(w, kmeans_dequantize(*a, granularity="channel"))
    lin = sqnr_db(w, fake_quantize(w, 3, granularity="channel"))
    assert km > lin


def test_kmeans_error_decreases_with_bits():
    w = torch.randn(8, 256)
    errs = [sqnr_db(w, kmeans_dequantize(*kmeans_quantize(w, b, granularity="channel"), granularity="channel"))
            for b in (2, 3, 4, 6)]
    assert errs == sorted(errs)


def test_more_centroids_than_values_reseeds_empty_clusters():
    w = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
    idx, cb = kmeans_quantize(w, 3)
    assert torch.equal(kmeans_dequantize(idx, cb), w)


def test_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        kmeans_quantize(torch.tensor([1.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="bits"):
        kmeans_quantize(torch.randn(4, 4), 9)
    with pytest.raises(ValueError, match="group_size"):
        kmeans_quantize(torch.randn(4, 10), 2, granularity="group", group_size=4)
    idx, cb = kmeans_quantize(torch.randn(4, 8), 2, granularity="channel")
    with pytest.raises(ValueError, match="codebook"):
        kmeans_dequantize(idx, cb[:2], granularity="channel")
