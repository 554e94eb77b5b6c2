"""Parameter counts: total, trainable, and without the classifier.

Some printed params leave the classifier out (the DCD paper's ResNet-50 23.5M, the
ODConv paper's detection backbones), so the classifier-free count is a metric of its own.
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


def count_params(model: nn.Module) -> dict[str, int]:
    """{'params', 'params_trainable', 'params_no_classifier'} for ``model``."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    classifier = classifier_of(model)
    head = sum(p.numel() for p in classifier.parameters()) if classifier is not None else 0
    return {"params": total, "params_trainable": trainable, "params_no_classifier": total - head}
