"""K-means (codebook) quantization: r ≈ C[i], with integer indices i and a float codebook C of 2^N centroids.

One codebook per tensor, per channel or per group. 1-D Lloyd iterations, vectorised over all codebooks:
assignment to the nearest centroid (bucketize against midpoints of the sorted centroids), update to the mean of each
cluster; initialisation at the quantiles (j + 1/2) / 2^N of the data; an empty cluster is re-seeded with a data point
drawn from a generator seeded by `seed`, so the result is deterministic for a given seed.
"""
import torch

from qtorch.quant._validate import check_axis, check_bits, check_finite, check_float, check_group_size, check_tensor


def _rows(x: torch.Tensor, granularity: str, axis: int | None, group_size: int | None):
    """View x as (R, n) rows, one codebook each; return (rows, rows_shape, unview) where unview(rows) restores x."""
    if granularity == "tensor":
        return x.reshape(1, -1), (), lambda r: r.reshape(x.shape)
    if granularity == "channel":
        ax = check_axis("axis", 0 if axis is None else axis, x.dim())
        moved = x.movedim(ax, 0)
        return moved.reshape(x.shape[ax], -1), (x.shape[ax],), lambda r: r.reshape(moved.shape).movedim(0, ax)
    if granularity != "group":
        raise ValueError(f"granularity: expected 'tensor', 'channel' or 'group', got {granularity!r}")
    ax = check_axis("axis", -1 if axis is None else axis, x.dim())
    if group_size is None:
        raise ValueError("group_size: required for granularity='group'")
    check_group_size("group_size", group_size, x.shape[ax])
    moved = x.movedim(ax, -1)
    rows_shape = moved.shape[:-1] + (moved.shape[-1] // group_size,)
    return moved.reshape(-1, group_size), tuple(rows_shape), lambda r: r.reshape(moved.shape).movedim(-1, ax)


def _assign(rows: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """Index of the nearest centroid for each value; centroids (R, k) sorted ascending."""
    mids = (centroids[:, 1:] + centroids[:, :-1]) * 0.5  # (R, k-1)
    return torch.searchsorted(mids.contiguous(), rows.contiguous())


def kmeans_quantize(x: torch.Tensor, bits: int, *, granularity: str = "tensor", axis: int | None = None,
                    group_size: int | None = None, seed: int = 0, max_iter: int = 100):
    """K-means codebook quantization -> (indices uint8 shaped like x, codebook fp32 of shape rows_shape + (2^bits,)).

    rows_shape is () per tensor, (C,) per channel along `axis` (default 0), x's shape with `axis` (default -1)
    divided by group_size per group. Centroids are sorted ascending within each codebook.
    """
    check_float("x", x)
    check_finite("x", x)
    check_bits("bits", bits, range(1, 9))
    if x.numel() == 0:
        raise ValueError("x: cannot cluster an empty tensor")
    rows, rows_shape, unview = _rows(x.float(), granularity, axis, group_size)
    n_rows, n = rows.shape
    k = 1 << bits
    gen = torch.Generator(device="cpu").manual_seed(seed)
    sorted_rows = rows.sort(dim=-1).values
    pos = ((torch.arange(k, dtype=torch.float64) + 0.5) / k * n).long().clamp_(max=n - 1).to(x.device)
    centroids = sorted_rows[:, pos]  # (R, k)
    idx = _assign(rows, centroids)
    for _ in range(max_iter):
        sums = torch.zeros(n_rows, k, dtype=torch.float64, device=x.device).scatter_add_(1, idx, rows.double())
        counts = torch.zeros(n_rows, k, dtype=torch.float64, device=x.device).scatter_add_(
            1, idx, torch.ones_like(rows, dtype=torch.float64))
        empty = counts == 0
        new = torch.where(empty, centroids.double(), sums / counts.clamp(min=1)).float()
        if bool(empty.any()):  # re-seed empty clusters with random data points of their row
            r, c = empty.nonzero(as_tuple=True)
            pick = torch.randint(0, n, (r.numel(),), generator=gen).to(x.device)
            new[r, c] = rows[r, pick]
        centroids = new.sort(dim=-1).values
        new_idx = _assign(rows, centroids)
        if torch.equal(new_idx, idx):
            break
        idx = new_idx
    indices = unview(idx.to(torch.uint8))
    return indices, centroids.reshape(*rows_shape, k)


def kmeans_dequantize(indices: torch.Tensor, codebook: torch.Tensor, *, granularity: str = "tensor",
                      axis: int | None = None, group_size: int | None = None) -> torch.Tensor:
    """r̂ = C[i]: look each index up in its codebook -> float32 tensor shaped like indices."""
    check_tensor("indices", indices)
    check_tensor("codebook", codebook)
    if indices.dtype not in (torch.uint8, torch.int8, torch.int32, torch.int64):
        raise TypeError(f"indices: expected an integer tensor, got {indices.dtype}")
    rows, rows_shape, unview = _rows(indices, granularity, axis, group_size)
    k = codebook.shape[-1]
    if tuple(codebook.shape[:-1]) != tuple(rows_shape):
        raise ValueError(f"codebook: expected shape {tuple(rows_shape) + (k,)} for indices {tuple(indices.shape)}, "
                         f"got {tuple(codebook.shape)}")
    idx = rows.long()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= k):
        raise ValueError(f"indices: values must lie in [0, {k - 1}] for a codebook of {k} entries")
    values = torch.gather(codebook.reshape(-1, k).float(), 1, idx)
    return unview(values)
