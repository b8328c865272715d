"""`evaluate`: metrics equal independent computations; checkpoints of any format; the PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix, log_loss, top_k_accuracy_score

from mlpmixer import ConfigError, save_model
from mlpmixer.evaluate.confusion import save_confusion_png
from mlpmixer.evaluate.eval import evaluate, evaluate_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread_per_test")


class FixedLogits(torch.nn.Module):
    """A 'model' whose logits for image i are row i of a table (the image holds i)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits[images.flatten(1)[:, 0].long()]


def test_metrics_equal_scikit_learn_on_known_logits():
    g = torch.Generator().manual_seed(0)
    n, k = 203, 7
    logits = 3 * torch.randn(n, k, generator=g)
    labels = torch.randint(0, k, (n,), generator=g)
    labels[labels == 6] = 5  # class 6 has no examples: its accuracy is None
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    batches = [(images[i : i + 50], labels[i : i + 50]) for i in range(0, n, 50)]
    names = [f"c{i}" for i in range(k)]
    result = evaluate(FixedLogits(logits), batches, names)
    y, scores = labels.numpy(), logits.numpy()
    predicted = scores.argmax(1)
    assert result.num_examples == n
    assert result.top1 == pytest.approx((predicted == y).mean())
    assert result.top5 == pytest.approx(top_k_accuracy_score(y, scores, k=5, labels=range(k)))
    probs = torch.softmax(logits.double(), 1).numpy()
    assert result.loss == pytest.approx(log_loss(y, probs, labels=range(k)), rel=1e-5)
    expected = confusion_matrix(y, predicted, labels=range(k))
    np.testing.assert_array_equal(np.array(result.confusion), expected)
    for c in range(6):
        members = y == c
        assert result.per_class_accuracy[c] == pytest.approx((predicted[members] == c).mean())
    assert result.per_class_accuracy[6] is None and result.per_class_count[6] == 0
    small = evaluate(FixedLogits(logits[:, :3]), [(images, labels.clamp(max=2))], names[:3])
    assert small.top5_k == 3 and small.top5 == 1.0


@pytest.mark.parametrize("fmt", ["native", "official"])
def test_checkpoint_top1_equals_a_direct_computation(
    digits_checkpoint, digits_test, single_thread, tmp_path, fmt
):
    path, model = digits_checkpoint
    if fmt == "official":  # the official layout keeps weights only: default preprocessing
        path = save_model(model, tmp_path / "digits.npz")
    images, labels, info = digits_test
    with single_thread(), torch.no_grad():
        predicted = model((images - 0.5) / 0.5).argmax(1)
        result, loaded = evaluate_checkpoint(path, "digits", batch_size=100)
    direct = (predicted == labels).double().mean().item()
    assert result.top1 == pytest.approx(direct) and direct > 0.7
    assert result.num_examples == len(labels) == info.num_examples
    assert result.class_names == list(info.class_names)
    assert sum(map(sum, result.confusion)) == len(labels)
    assert loaded.config.num_classes == 10


def test_other_class_names_are_a_warning(digits_checkpoint):
    _, model = digits_checkpoint
    renamed = type(model)(model.config.replace(class_names=[f"digit {i}" for i in range(10)]))
    renamed.load_state_dict(model.state_dict())
    with pytest.warns(UserWarning, match=r"class names \(digit 0, digit 1"):
        result, _ = evaluate_checkpoint(renamed, "digits")
    assert result.class_names[0] == "0"  # the data set's names label the confusion matrix


def test_class_count_mismatch_is_refused(digits_checkpoint):
    _, model = digits_checkpoint
    other = type(model)(model.config.replace(num_classes=3, class_names=None))
    with pytest.raises(ConfigError, match="3 classes but digits has 10"):
        evaluate_checkpoint(other, "digits")


def test_confusion_png_has_class_names(tmp_path):
    path = tmp_path / "confusion.png"
    save_confusion_png(path, [[5, 1], [0, 7]], ["cat", "dog"], title="test")
    with Image.open(path) as png:
        assert png.format == "PNG" and min(png.size) > 100
