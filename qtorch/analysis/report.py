"""Plain-text tables of the analytic results (used by the command line and by FlopCount.table)."""
from qtorch.analysis.flops import FlopBreakdown, TrainingFlops
from qtorch.analysis.peak import PeakMemory

_UNITS = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def human(x: float, unit: str = "") -> str:
    """1.23e12 -> '1.23 T' (decimal prefixes)."""
    for scale, prefix in _UNITS:
        if abs(x) >= scale:
            return f"{x / scale:.2f} {prefix}{unit}"
    return f"{x:.0f} {unit}".rstrip()


def gb(nbytes: float) -> str:
    """Decimal gigabytes (the course's GB: 175e9 params · 2 bytes = 350 GB), with GiB beside."""
    return f"{nbytes / 1e9:,.2f} GB ({nbytes / 2**30:,.2f} GiB)"


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned others."""
    widths = [max(len(str(r[c])) for r in [header] + rows) for c in range(len(header))]

    def line(r):
        return "  ".join(str(v).ljust(w) if c == 0 else str(v).rjust(w) for c, (v, w) in enumerate(zip(r, widths)))

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in rows])


def flop_table(fwd: FlopBreakdown) -> str:
    """One row per term of the forward count, then the totals."""
    total = fwd.total
    rows = [[r.name, r.category, r.formula, f"×{r.count}", human(r.flops), f"{100 * r.flops / total:.3f}%"]
            for r in fwd.rows]
    rows.append(["total (forward)", "", "", "", human(total), "100%"])
    rows.append(["  of which matmul", "", "", "", human(fwd.matmul_total), f"{100 * fwd.matmul_total / total:.3f}%"])
    return format_table(["term", "category", "FLOPs per occurrence", "count", "FLOPs", "share"], rows)


def category_table(train: TrainingFlops) -> str:
    """The course-style distribution of training FLOPs by category."""
    cats = train.by_category()
    total = sum(cats.values())
    rows = [[k, human(v), f"{100 * v / total:.3f}%"] for k, v in cats.items()]
    rows.append(["total (fwd + bwd)", human(total), "100%"])
    return format_table(["category", "training FLOPs", "share"], rows)


def memory_table(items: dict[str, float]) -> str:
    rows = [[k, gb(v)] for k, v in items.items()]
    rows.append(["total", gb(sum(items.values()))])
    return format_table(["memory (per GPU)", "bytes"], rows)


def peak_table(peak: PeakMemory, top: int = 3) -> str:
    """The static part and the highest points of a replayed step."""
    rows = [[f"static: {k}", gb(v)] for k, v in peak.static.items()]
    for event, live in sorted(peak.timeline, key=lambda e: -e[1])[:top]:
        rows.append([event, gb(live)])
    return format_table([f"predicted peak {gb(peak.peak)}: static part, highest points", "live bytes"], rows)
