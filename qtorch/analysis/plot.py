"""A figure of the FLOP and memory breakdown (matplotlib, an optional dependency)."""


def require_matplotlib():
    """Import matplotlib with the Agg backend, or raise ImportError saying what to install."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("--plot needs matplotlib: pip install matplotlib (or pip install 'qtorch[dev]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_breakdown(path: str, title: str, flops_by_category: dict[str, float], memory: dict[str, float]) -> None:
    """Two panels: FLOPs by category (share of the total), memory by component (GB, decimal). Writes `path`."""
    plt = require_matplotlib()
    fig, (ax_flops, ax_mem) = plt.subplots(1, 2, figsize=(12, 4.5))
    total = sum(flops_by_category.values())
    names = [k for k, v in flops_by_category.items() if v]
    shares = [100 * flops_by_category[k] / total for k in names]
    bars = ax_flops.barh(names, shares, color="tab:blue")
    ax_flops.bar_label(bars, labels=[f"{s:.3f}%" for s in shares], padding=3, fontsize=8)
    ax_flops.set_xlabel("share of FLOPs (%)")
    ax_flops.set_xlim(0, max(shares) * 1.25)
    ax_flops.invert_yaxis()
    ax_flops.set_title(f"FLOPs by category (total {total / 1e12:,.2f} TFLOPs)")
    left = 0.0
    for (name, nbytes), color in zip(memory.items(), plt.cm.tab10.colors):
        ax_mem.barh(["memory"], [nbytes / 1e9], left=left, color=color, label=f"{name}: {nbytes / 1e9:,.2f} GB")
        left += nbytes / 1e9
    ax_mem.set_xlabel("GB (10^9 bytes)")
    ax_mem.set_title(f"memory per GPU (total {left:,.2f} GB)")
    ax_mem.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
