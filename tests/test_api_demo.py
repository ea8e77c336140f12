"""`python -m qtorch demo`: no meaningless CPU latency column, no progress-bar escape codes in logs (issue 13,
item 8)."""
import sys

from qtorch.cli.main import main

ARGS = ("demo", "--device", "cpu", "--model", "llama", "--llama-preset", "tiny", "--schemes", "w8a16,w8a8-static")


def test_cpu_table_has_no_latency_column(capsys):
    assert main([*ARGS, "--no-progress"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("scheme "))
    assert "latency" not in header and "quantize s" in header
    assert "no latency column on the CPU" in out


def test_no_progress_bars_when_stderr_is_not_a_terminal(capsys):
    assert main(list(ARGS)) == 0  # no --no-progress: capsys' stderr is not a terminal
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err and "it/s" not in err and "scheme/s" not in err


def test_progress_bars_on_a_terminal_unless_no_progress(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(list(ARGS)) == 0
    assert "llama" in capsys.readouterr().err  # the bar's label
    assert main([*ARGS, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
