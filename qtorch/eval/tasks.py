"""The two demo models as evaluation tasks: the seeded LLaMA-style decoder (logits SQNR) and all-MiniLM-L6-v2
(sentence-embedding cosine similarity on the built-in sentences; calibration on a disjoint sentence set)."""
import torch

from qtorch.eval.evaluate import EvalTask, logits_errors
from qtorch.eval.measure import cosine_stats
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


@torch.no_grad()
def minilm_task(device="cpu", dtype=torch.float32, progress: bool = True) -> EvalTask:
    """all-MiniLM-L6-v2; cosine of each evaluation sentence's embedding vs the float32 model's."""
    from qtorch.models.minilm import load_minilm
    from qtorch.models.minilm_sentences import CALIBRATION_SENTENCES, EVAL_SENTENCES

    encoder = load_minilm(device=device)
    inputs = encoder.tokenize(EVAL_SENTENCES)
    reference = encoder(**inputs)  # (B, 384) float32
    calibration = Calibration(batches=encoder.unpadded_batches(CALIBRATION_SENTENCES),
                              plan_inputs=encoder.tokenize(CALIBRATION_SENTENCES[:PLAN_SENTENCES]), progress=progress)
    if dtype != torch.float32:
        encoder = encoder.to(dtype)
    return EvalTask(encoder, inputs, calibration, embedding_errors, reference)
