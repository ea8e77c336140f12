"""The mixed-input GEMM (csrc/mixed_gemm) side by side with bf16, qtorch's Triton weight-only kernels and torchao, one
run, cold weights, CUDA-graph medians (and eager per-call time at M = 1). Records benchmark "weight_only_linear".

impls: bf16 (F.linear), qtorch_w{4,8}a16_mixed (register dequantization forced, any M), qtorch_w{4,8}a16_dequant
(dequantize once + cuBLAS forced), qtorch_w{4,8}a16_triton (the Triton kernels on the row-major layout, their own
routing), torchao_int4wo (tinygemm, tile_packed_to_4d, g = 128) and torchao_int8wo (Int8WeightOnlyConfig, per
channel, F.linear compiled as torchao recommends: see torchao_us) when torchao imports.
W4A16: g = 128 asymmetric; W8A16: per channel. GB/s = (weight bytes + scales + x + y) / time. Rows print as they are
measured, the whole table again at the end; a time over SUSPECT_X_BF16 times bf16's is flagged as it prints.

    python benchmarks/bench_mixed_gemm.py [--ms 1,16] [--out FILE] [--ao-mode max-autotune-no-cudagraphs]
    python benchmarks/bench_mixed_gemm.py --variants 0-15 --ms 1,16,64   # tuning: every tile variant of the kernel
                                                                          # forced (QTORCH_MIXED_VARIANT), mixed path
    python benchmarks/bench_mixed_gemm.py --variants 13-15 --splits 1,2,4 # and the warpgroup kernel's K split forced
                                                                          # (QTORCH_MIXED_SPLITS)
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_group_quant import _torchao_configs, _torchao_weights, copies_for, graph_time_us  # noqa: E402
from records import run_meta  # noqa: E402

SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096)]  # (K, N) of the LLaMA-2-7B projections
MS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 8192]
WGMMA_FIRST = 13  # csrc/mixed_gemm/launch.cu kFirstWgmmaVariant
WGMMA_LAST = 16  # csrc/mixed_gemm/launch.cu kLastWgmmaVariant
FORCED_MIXED_MAX_M = {4: 2048, 8: 512}  # by bits: the mixed-input GEMM forced (whatever the routing) and timed up to M
SUSPECT_X_BF16 = 20  # a time this many times bf16's at the same (shape, M) is a harness problem until shown otherwise
HEADER = f"{'K':>6} {'N':>6} {'M':>5} {'impl':<22} {'us':>9} {'x bf16':>7} {'GB/s':>7} {'eager us':>9}"


def eager_us(fn, calls=200):
    """Host-bound per-call time: `calls` back-to-back calls, synchronised once."""
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e6


def torchao_us(weights, x, mode):
    """Median time of torchao's F.linear over the weight copies: eager (mode None) or compiled with torch.compile's
    `mode`. torchao's int8 weight-only path is aten ops that Inductor turns into a GEMV at M = 1 (the mm
    decomposition torchao's inductor settings enable) and int8 -> bf16 + cuBLAS mm + scale above, so the compiled
    form must run what Inductor generated for this exact (shape, M), and nothing else, inside the timing: the
    Dynamo cache starts empty, shapes are static (no dynamic-M graph, no recompile per M), the graph is whole
    (fullgraph: a graph break raises instead of running part of it eagerly), every weight copy is compiled before
    timing with room for a graph each (reaching the limit raises instead of falling back to eager), and a recompile
    during the timing raises instead of being timed."""
    if mode is None:
        return graph_time_us([lambda w=w: F.linear(x, w) for w in weights])
    limit = max(torch._dynamo.config.recompile_limit, len(weights))
    with torch._dynamo.config.patch(recompile_limit=limit, fail_on_recompile_limit_hit=True):
        torch.compiler.reset()
        linear = torch.compile(F.linear, dynamic=False, fullgraph=True, mode=mode)
        for w in weights:
            linear(x, w)
        with torch._dynamo.config.patch(error_on_recompile=True):
            return graph_time_us([lambda w=w: linear(x, w) for w in weights])


def row_line(k, n, m, impl, us, sp, gbps, eager):
    return (f"{k:>6} {n:>6} {m:>5} {impl:<22} {us:>9.2f} {sp:>7.2f} {gbps:>7.0f} "
            f"{'' if eager is None else f'{eager:9.1f}'}")


def quantize(w, bits):
    """(tiled int32, scale, zp, canonical packed, group_size) of one bf16 weight through qtorch's reference math."""
    from qtorch.quant.affine import compute_qparams, quantize as q_affine
    from qtorch.quant.layout import pack_tiled
    from qtorch.quant.packing import pack

    n, k = w.shape
    g = 128 if bits == 4 else k
    scale, zp = compute_qparams(w.float(), bits, symmetric=bits == 8, granularity="group", axis=-1, group_size=g)
    q = q_affine(w.float(), scale, zp, bits, axis=-1, group_size=g)  # (N, K) int8
    return pack_tiled(q, bits), scale.contiguous(), zp.to(torch.int8).contiguous(), pack(q, bits), g


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ms", default=",".join(map(str, MS)))
    parser.add_argument("--out", default=None, help="JSON file for the records (default: print only)")
    parser.add_argument("--variants", default=None, help="tile variants to force, e.g. 0-12 (tuning table only)")
    parser.add_argument("--splits", default=None, help="with --variants: K splits to force on the warpgroup variants "
                                                       f"({WGMMA_FIRST} on), e.g. 1,2,4")
    parser.add_argument("--ao-mode", default="default", choices=["default", "max-autotune-no-cudagraphs"],
                        help="torch.compile mode of the compiled torchao baselines (CUDA graphs are the bench's own; "
                             "max-autotune-no-cudagraphs, as torchao recommends, autotunes each (shape, M): minutes)")
    args = parser.parse_args()
    import qtorch.ops  # noqa: F401  (loads qtorch._C)
    if args.variants:
        variants = [v for part in args.variants.split(",") for v in _span(part)]
        splits = [int(v) for v in args.splits.split(",")] if args.splits else [None]
        configs = [(v, sp) for v in variants for sp in (splits if WGMMA_FIRST <= v <= WGMMA_LAST else [None])]
        return tune([int(m) for m in args.ms.split(",")], configs)
    ops = torch.ops.qtorch
    ms = [int(m) for m in args.ms.split(",")]
    records, rows = [], []
    meta = run_meta()

    def add(impl, params, us, bf16_us, moved, eager=None):
        metrics = {"gbps": moved / us / 1e3, "speedup_vs_bf16": bf16_us / us}
        if eager is not None:
            metrics["eager_us"] = eager
        records.append({"benchmark": "weight_only_linear", "impl": impl, "params": params, "median_us": us,
                        "metrics": metrics, **meta})
        rows.append((params["K"], params["N"], params["M"], impl, us, bf16_us / us, moved / us / 1e3, eager))
        print(row_line(*rows[-1]), flush=True)
        if us > SUSPECT_X_BF16 * bf16_us:
            print(f"[bench] suspect: {impl} at K={params['K']} N={params['N']} M={params['M']} takes {us:.1f} us, "
                  f"{us / bf16_us:.0f}x bf16 (> {SUSPECT_X_BF16}x): a harness problem until shown otherwise",
                  flush=True)

    print(HEADER, flush=True)
    for k, n in SHAPES:
        count = copies_for(n * k // 2, False)
        ws = [torch.randn(n, k, device="cuda").to(torch.bfloat16) * 0.02 for _ in range(count)]
        quant = {bits: [quantize(w, bits) for w in ws] for bits in (4, 8)}
        ao = {}  # impl: (weight copies, torch.compile mode or None for eager, bits, group size)
        for impl, (factory, compiled) in _torchao_configs().items():
            try:
                bits, g = (4, 128) if impl == "torchao_int4wo" else (8, k)
                ao[impl] = (_torchao_weights(k, n, count, factory(), "cuda"), args.ao_mode if compiled else None,
                            bits, g)
            except Exception as exc:  # a baseline that does not run here is reported, not fatal
                print(f"[bench] {impl} unavailable for K={k} N={n}: {type(exc).__name__}: {exc}")
        for m in ms:
            x = torch.randn(m, k, device="cuda").to(torch.bfloat16)
            params = {"M": m, "K": k, "N": n, "dtype": "bfloat16"}
            io = m * k * 2 + m * n * 2
            bf16_us = graph_time_us([lambda w=w: F.linear(x, w) for w in ws])
            add("bf16", params, bf16_us, bf16_us, n * k * 2 + io,
                eager_us(lambda: F.linear(x, ws[0])) if m == 1 else None)
            for bits in (4, 8):
                qs = quant[bits]
                g = qs[0][4]
                moved = n * k * bits // 8 + n * (k // g) * 5 + io
                p = {**params, "bits": bits, "group_size": g}
                name = f"qtorch_w{bits}a16"
                variants = {"_dequant": -1}
                if m <= FORCED_MIXED_MAX_M[bits]:
                    variants["_mixed"] = 1 << 30
                for suffix, max_m in variants.items():
                    us = graph_time_us([lambda q=q, max_m=max_m: ops._mixed_gemm_cuda(x, q[0], q[1], q[2], bits, g, None,
                                                                                     max_m) for q in qs])
                    eager = None
                    if m == 1:
                        q0 = qs[0]
                        eager = eager_us(lambda: ops._mixed_gemm_cuda(x, q0[0], q0[1], q0[2], bits, g, None, max_m))
                    add(name + suffix, p, us, bf16_us, moved, eager)
                if m <= 128:
                    us = graph_time_us([lambda q=q: ops.weight_only_linear(x, q[3], q[1], q[2], bits, g, None)
                                        for q in qs])
                    add(name + "_triton", p, us, bf16_us, moved)
            for impl, (weights, mode, bits, g) in ao.items():
                try:
                    us = torchao_us(weights, x, mode)
                    # int4: bf16 scale + zero point per group; int8: a bf16 scale per row
                    moved = n * k * bits // 8 + (n * (k // g) * 4 if bits == 4 else n * 2) + io
                    add(impl, {**params, "bits": bits, "group_size": g}, us, bf16_us, moved)
                except Exception as exc:
                    print(f"[bench] {impl} failed at M={m}: {type(exc).__name__}: {exc}")
        del ws, quant, ao
        torch.cuda.empty_cache()
        if args.out:  # after every shape: a run cut short keeps what it measured
            Path(args.out).write_text(json.dumps({"records": records}, indent=1))
    print(HEADER)
    for row in rows:
        print(row_line(*row))


def _span(part):
    lo, _, hi = part.partition("-")
    return range(int(lo), int(hi or lo) + 1)


def tune(ms, configs):
    """Median time of the mixed path for every forced (tile variant, K split or None for the rule), beside bf16 and
    dequantize + cuBLAS: the table that sets auto_variant(), wgmma_splits() and the mixed_max_m() limits."""
    ops = torch.ops.qtorch
    print(f"{'K':>6} {'N':>6} {'bits':>4} {'M':>4} {'bf16':>7} {'dequant':>7} "
          + " ".join(f"{f'v{v}' + (f's{sp}' if sp else ''):>7}" for v, sp in configs))
    for k, n in SHAPES:
        count = copies_for(n * k // 2, False)
        ws = [torch.randn(n, k, device="cuda").to(torch.bfloat16) * 0.02 for _ in range(count)]
        for bits in (4, 8):
            qs = [quantize(w, bits) for w in ws]
            g = qs[0][4]
            for m in ms:
                x = torch.randn(m, k, device="cuda").to(torch.bfloat16)
                bf16_us = graph_time_us([lambda w=w: F.linear(x, w) for w in ws])
                dequant_us = graph_time_us([lambda q=q: ops._mixed_gemm_cuda(x, q[0], q[1], q[2], bits, g, None, -1)
                                            for q in qs])
                times, first = [], {}
                for v, sp in configs:
                    os.environ["QTORCH_MIXED_VARIANT"] = str(v)
                    if sp:
                        os.environ["QTORCH_MIXED_SPLITS"] = str(sp)
                    else:
                        os.environ.pop("QTORCH_MIXED_SPLITS", None)
                    y = ops._mixed_gemm_cuda(x, *qs[0][:3], bits, g, None, 1 << 30)
                    # register-kernel variants with the same warps per CTA sum each chunk in the same order (SAME_SUMS
                    # in the tests); the warpgroup kernel's (13-16) are checked against float64 by the tests only
                    same_sums = 0 if v < 10 else (1 if v < WGMMA_FIRST else None)
                    if same_sums is not None:
                        v0, y0 = first.setdefault(same_sums, (v, y))
                        if not torch.equal(y, y0):
                            print(f"variant {v} differs from variant {v0} at K={k} N={n} bits={bits} M={m}")
                    times.append(graph_time_us([lambda q=q: ops._mixed_gemm_cuda(x, q[0], q[1], q[2], bits, g, None,
                                                                                 1 << 30) for q in qs]))
                os.environ.pop("QTORCH_MIXED_VARIANT")
                os.environ.pop("QTORCH_MIXED_SPLITS", None)
                print(f"{k:>6} {n:>6} {bits:>4} {m:>4} {bf16_us:7.2f} {dequant_us:7.2f} "
                      + " ".join(f"{t:7.2f}" for t in times), flush=True)
        del ws, qs
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
