import math

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from memtasks.detection import Detection
from memtasks.paraphrase import HIGH, LOW, ParaphraseClassifier, case_spans
from memtasks.scoring import Probe, score_probes


def constant_classifier(path, probability: float) -> str:
    """A tiny local BERT pair classifier whose P(equivalent) is ``probability`` for every input."""
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "dog"])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=16,
        num_labels=2, id2label={0: "not_equivalent", 1: "equivalent"}, label2id={"not_equivalent": 0, "equivalent": 1},
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, math.log(probability / (1 - probability))]))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def likely(tmp_path_factory):
    return ParaphraseClassifier(constant_classifier(tmp_path_factory.mktemp("p70"), 0.7))


@pytest.fixture(scope="module")
def certain(tmp_path_factory):
    return ParaphraseClassifier(constant_classifier(tmp_path_factory.mktemp("p995"), 0.995))


def test_positive_label_found_by_name(likely):
    assert likely.positive_label == 1
    assert likely.probabilities([("the cat", "the dog")]) == pytest.approx([0.7])


def test_confidence_rule(likely, certain):
    reworded = [("The cat sat on the mat all day.", "All day long, the cat was sitting on the mat.")]
    identical = [("The cat sat on the mat.", "the cat sat on the MAT.")]
    # Some pair in (0.5, 0.99): high; every pair at 0.99 or above: low.
    assert likely.confidence([reworded]) == [(HIGH, pytest.approx(0.7), likely.name)]
    assert certain.confidence([reworded])[0].category == LOW
    # Sentences identical but for case score 0, so they never make a case high.
    assert [g.category for g in likely.confidence([identical, reworded])] == [LOW, HIGH]
    assert likely.confidence([]) == []


def test_case_spans_slice_both_texts():
    suffix, generation = "abc def ghi", "xx def yy"
    assert case_spans(suffix, generation, [Detection(4, 7, 3, 6)]) == [("def", "def")]


def test_score_probes_splits_paraphrases(likely):
    training = (
        "The council approved a new budget for the city library on Tuesday evening after a long debate. "
        "Members said the money would pay for longer opening hours and a larger collection of children's books. "
        "The mayor welcomed the decision and thanked the volunteers who had campaigned for months."
    )
    reworded = (
        "After a lengthy debate on Tuesday evening, the council approved the city library's new budget. "
        "The funds will pay for a bigger collection of books for children and for longer opening hours, members said. "
        "Thanking the volunteers who campaigned for months, the mayor welcomed the decision."
    )
    probes = [Probe("a", training, reworded), Probe("b", "Completely unrelated words about football scores today.", "")]
    plain = score_probes(probes)
    graded = score_probes(probes, paraphrase_classifier=likely)
    # Without a classifier the default cross-encoder grades it.
    assert plain.outcomes[0].category == HIGH
    assert "cross-encoder grader" in " ".join(plain.notes)
    assert graded.outcomes[0].category == HIGH
    assert graded.categories[HIGH].value == pytest.approx(0.5)
    assert graded.categories[LOW].value == 0.0
    assert graded.categories["paraphrase"].value == pytest.approx(0.5)
    assert likely.name in " ".join(graded.notes)
