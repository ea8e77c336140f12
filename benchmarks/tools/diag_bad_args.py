"""Which bad-argument errors of the int8 CUDA ops crash the process? Each case runs in its own subprocess.

    python benchmarks/tools/diag_bad_args.py          # one line per case: exit code and the error raised
"""
import subprocess
import sys

PRELUDE = """
import torch, qtorch.ops as ops
M, N, K = 32, 64, 128
d = "cuda"
a = dict(x_q=torch.randint(-128, 128, (M, K), dtype=torch.int8, device=d), x_scale=torch.rand(M, device=d),
         x_zp=torch.zeros(M, dtype=torch.int32, device=d), w_q=torch.randint(-128, 128, (N, K), dtype=torch.int8, device=d),
         w_scale=torch.rand(N, device=d), w_colsum=torch.zeros(N, dtype=torch.int32, device=d), w_zp=None, bias=None)
"""
CASES = {
    "type_error": 'a["x_scale"] = a["x_scale"].double()',
    "length_dims_message": 'a["x_scale"] = a["x_scale"][:-1]',
    "n_not_multiple_of_16_int_message": 'a["w_q"] = a["w_q"][:40].contiguous(); a["w_scale"] = a["w_scale"][:40].contiguous(); a["w_colsum"] = a["w_colsum"][:40].contiguous()',
    "cpu_tensor_device_message": 'a["x_scale"] = a["x_scale"].cpu()',
    "misaligned_const_char_message": 's = torch.empty(M * K + 1, dtype=torch.int8, device=d); x = s[1:].view(M, K); x.copy_(a["x_q"]); a["x_q"] = x',
}
CALL = """
try:
    torch.ops.qtorch.int8_scaled_mm(a["x_q"], a["x_scale"], a["x_zp"], a["w_q"], a["w_scale"], a["w_colsum"], a["w_zp"], a["bias"], torch.bfloat16)
    print("no error")
except Exception as e:
    print(type(e).__name__, str(e).splitlines()[0][:150])
"""
for name, change in CASES.items():
    r = subprocess.run([sys.executable, "-X", "faulthandler", "-c", PRELUDE + change + CALL], capture_output=True, text=True)
    print(f"{name:36s} exit {r.returncode}: {(r.stdout.strip() or r.stderr.strip().splitlines()[0] if r.stderr.strip() else '')[:200]}")
if len(sys.argv) > 1 and sys.argv[1] == "--gdb":  # the C++ backtrace of the crashing case (cuda-gdb debugs host code too)
    code = PRELUDE + CASES["length_dims_message"] + CALL
    r = subprocess.run(["cuda-gdb", "-batch", "-ex", "set pagination off", "-ex", "run", "-ex", "bt 40",
                        "--args", sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    print("\n".join(line for line in r.stdout.splitlines() if line.startswith("#") or "SIG" in line)[:6000])
