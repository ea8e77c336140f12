"""The two demo models as evaluation tasks: the seeded LLaMA-style decoder (logits SQNR) and all-MiniLM-L6-v2
(sentence-embedding cosine similarity on two shipped evaluation sets; calibration on a third, generic set)."""
import torch

from qtorch.eval.evaluate import EvalTask, logits_errors
from qtorch.eval.measure import cosine_stats
from qtorch.eval.retrieval import RetrievalCheck, near_duplicates
from qtorch.eval.schemes import Calibration

EVAL_SEED, CALIBRATION_SEED = 1, 2
CALIBRATION_SEQUENCES = 16  # random-token sequences for the LLaMA-style model's calibration (GPTQ needs a few
# thousand tokens: with fewer than the layers' input widths its Hessians are singular and it overfits)
PLAN_SENTENCES = 16  # calibration sentences plan_bits' sensitivity runs use (one forward per layer and candidate)


def random_tokens(vocab: int, batch: int, seq: int, seed: int, device) -> torch.Tensor:
    """(batch, seq) int64 token ids from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (batch, seq), generator=gen).to(device)


@torch.no_grad()
def llama_task(preset: str = "small", device="cpu", dtype=torch.float32, batch: int = 2, seq: int = 64,
               progress: bool = True) -> EvalTask:
    """A seeded random-weight Llama; errors of its logits vs the float32 model on random tokens."""
    from qtorch.models.llama import build_llama

    model32 = build_llama(preset, seed=0, dtype=torch.float32, device=device)
    vocab = model32.config.vocab_size
    tokens = random_tokens(vocab, batch, seq, EVAL_SEED, device)  # (B, S)
    reference = model32(tokens).float()  # (B, S, vocab)
    model = model32 if dtype == torch.float32 else model32.to(dtype)
    calib = random_tokens(vocab, CALIBRATION_SEQUENCES, 2 * seq, CALIBRATION_SEED, device)  # (16, 2S)
    calibration = Calibration(batches=list(calib.split(2)), plan_inputs=calib[:2], progress=progress)
    return EvalTask(model, tokens, calibration, logits_errors, reference)


def embedding_errors(reference: torch.Tensor, out: torch.Tensor) -> dict[str, float]:
    mean, worst = cosine_stats(reference, out.float())
    return {"cosine_mean": mean, "cosine_min": worst}


def per_set_embedding_errors(set_sizes: dict[str, int]):
    """error_fn over consecutive evaluation sets of the given sizes: cosine_mean_<set> per set, cosine_mean = the
    worse set's mean (the headline), cosine_min over all sentences."""
    def errors(reference: torch.Tensor, out: torch.Tensor) -> dict[str, float]:
        out = out.float()
        per_set, start = {}, 0
        for name, size in set_sizes.items():
            per_set[f"cosine_mean_{name}"], _ = cosine_stats(reference[start:start + size], out[start:start + size])
            start += size
        return {"cosine_mean": min(per_set.values()), "cosine_min": cosine_stats(reference, out)[1], **per_set}
    return errors


@torch.no_grad()
def minilm_task(device="cpu", dtype=torch.float32, progress: bool = True, retrieval: bool = True) -> EvalTask:
    """all-MiniLM-L6-v2; cosine of each evaluation sentence's embedding vs the float32 model's, on both shipped
    evaluation sets (qtorch/data: eval_everyday, eval_longform), calibrated on calibration_generic only.
    retrieval: also the near-duplicate retrieval check on the same sentences (qtorch.eval.retrieval)."""
    from qtorch.data import EVAL_SETS, load_sentences
    from qtorch.models.minilm import load_minilm

    encoder = load_minilm(device=device)
    sets = {name.removeprefix("eval_"): load_sentences(name) for name in EVAL_SETS}
    inputs = encoder.tokenize([s for sentences in sets.values() for s in sentences])
    reference = encoder(**inputs)  # (B, 384) float32
    calibration_sentences = load_sentences("calibration_generic")
    calibration = Calibration(batches=encoder.unpadded_batches(calibration_sentences),
                              plan_inputs=encoder.tokenize(calibration_sentences[:PLAN_SENTENCES]), progress=progress)
    check = RetrievalCheck(encoder, [s for sentences in sets.values() for s in sentences],
                           near_duplicates(sets)) if retrieval else None
    if dtype != torch.float32:
        encoder = encoder.to(dtype)
    return EvalTask(encoder, inputs, calibration, per_set_embedding_errors({k: len(v) for k, v in sets.items()}),
                    reference, check)
