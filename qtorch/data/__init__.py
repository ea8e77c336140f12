"""Sentence sets shipped with qtorch (one sentence per line, UTF-8); qtorch/data/README.md says where each comes from.

  calibration_generic   251 short encyclopedic, instructional and notice-style sentences: the calibration set
  eval_everyday         64 short everyday sentences (news, captions, requests, questions): evaluation set A
  eval_longform         64 long informal sentences (reviews, messages, anecdotes, sports, contract clauses): set B
"""
from importlib.resources import files

SENTENCE_SETS = ("calibration_generic", "eval_everyday", "eval_longform")
EVAL_SETS = ("eval_everyday", "eval_longform")


def load_sentences(name: str) -> tuple[str, ...]:
    """The sentences of a shipped set, in file order."""
    if name not in SENTENCE_SETS:
        raise ValueError(f"name: unknown sentence set {name!r}; valid: {', '.join(SENTENCE_SETS)}")
    text = files("qtorch.data").joinpath(f"{name}.txt").read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip())
