"""Parameter counts: total, trainable, without the classifier, and less a static one.

The DCD paper's ResNet parameter figures exclude the final fully connected
layer (11.1M for ResNet-18), so the classifier-free count is a metric of its own.
The ODConv paper's MS-COCO backbone figures are the total less a plain linear
classifier of the model's shape (in x out weights plus the bias): the same as the
classifier-free count where the classifier is static, but for a dynamic classifier
(DCD's) its dynamic parts stay in (``params_less_static_fc``).
"""

from __future__ import annotations

from torch import nn


def classifier_of(model: nn.Module) -> nn.Module | None:
    """The last ``nn.Linear`` (or a module marked ``is_classifier``) in definition order."""
    found = None
    for module in model.modules():
        if getattr(module, "is_classifier", False) or isinstance(module, nn.Linear):
            found = module
    if found is not None:
        # a Linear nested inside a marked dynamic classifier belongs to it
        for module in model.modules():
            if getattr(module, "is_classifier", False) and any(
                m is found for m in module.modules()
            ):
                return module
    return found


def static_classifier_params(classifier: nn.Module | None) -> int:
    """Params of a plain ``nn.Linear`` with the classifier's shape: in x out, plus out
    for a bias; 0 where there is no classifier."""
    if classifier is None:
        return 0
    has_bias = getattr(classifier, "bias", None) is not None
    return classifier.in_features * classifier.out_features + (
        classifier.out_features if has_bias else 0
    )


def count_params(model: nn.Module) -> dict[str, int]:
    """{'params', 'params_trainable', 'params_no_classifier', 'params_less_static_fc'}."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    classifier = classifier_of(model)
    head = sum(p.numel() for p in classifier.parameters()) if classifier is not None else 0
    return {
        "params": total,
        "params_trainable": trainable,
        "params_no_classifier": total - head,
        "params_less_static_fc": total - static_classifier_params(classifier),
    }
