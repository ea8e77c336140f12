"""Baselines qtorch is measured against: FP8 row-wise linears through torch._scaled_mm (fp8.py) and torchao's
configs (torchao.py).

Benchmark side: nothing under qtorch/ imports this package (the library never imports torchao); benchmarks/ and the
`python -m qtorch bench` command import it lazily, and it imports torchao only when asked for a torchao baseline.
"""
