"""Models built from other registered models: a majority-vote ensemble and a classifier-gated segmenter."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .hub_model import LGGModel
from .registry import create_model, get_entry, register_model

# Background logit written where the gate rejects a slice: sigmoid(-20) ~ 2e-9, an empty mask.
EMPTY_LOGIT = -20.0
# Keeps the vote logits finite when all members agree.
_VOTE_EPS = 1e-4


def _require_task(name: str, task: str, role: str) -> None:
    if get_entry(name).task != task:
        raise ValueError(f"{role} must be a {task!r} model, got {name!r} ({get_entry(name).task!r})")


class MajorityVote(nn.Module):
    """Hard majority vote of binary classifiers.

    Returns logit(fraction of members with a positive logit), so ``sigmoid(output) > 0.5`` exactly when
    a strict majority votes tumor. The vote is not differentiable: train the members separately.

    Args:
        members: Registered classifier names.
        member_kwargs: Builder kwargs per member (default: none).
    """

    def __init__(self, members: Sequence[str], member_kwargs: Sequence[dict] | None = None) -> None:
        super().__init__()
        member_kwargs = [{}] * len(members) if member_kwargs is None else member_kwargs
        if len(member_kwargs) != len(members):
            raise ValueError(f"got {len(member_kwargs)} member_kwargs for {len(members)} members")
        for name in members:
            _require_task(name, "classify", "ensemble member")
        self.members = nn.ModuleList(create_model(name, **kw) for name, kw in zip(members, member_kwargs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        votes = torch.stack([member(x) > 0 for member in self.members]).float().mean(dim=0)
        return torch.logit(votes, eps=_VOTE_EPS)


class GatedSegmenter(nn.Module):
    """Segmenter whose mask is kept only on slices the classifier calls tumor.

    Args:
        classifier: Registered classifier name.
        segmenter: Registered segmenter name.
        classifier_kwargs: Builder kwargs of the classifier.
        segmenter_kwargs: Builder kwargs of the segmenter.
        threshold: Classifier probability at or above which the segmenter's mask is kept.
    """

    def __init__(
        self,
        classifier: str,
        segmenter: str,
        classifier_kwargs: dict | None = None,
        segmenter_kwargs: dict | None = None,
        threshold: float = 0.5,
    ) -> None:
        super().__init__()
        _require_task(classifier, "classify", "classifier")
        _require_task(segmenter, "segment", "segmenter")
        self.classifier = create_model(classifier, **(classifier_kwargs or {}))
        self.segmenter = create_model(segmenter, **(segmenter_kwargs or {}))
        self.threshold = threshold

    def forward_with_gate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return gated segmentation logits ``(B, 1, H, W)`` and classifier logits ``(B, 1)``."""
        cls_logits = self.classifier(x)
        # Running the segmenter on the whole batch keeps shapes static (export-friendly).
        seg_logits = self.segmenter(x)
        tumor = (torch.sigmoid(cls_logits) >= self.threshold).view(-1, 1, 1, 1)
        return torch.where(tumor, seg_logits, EMPTY_LOGIT), cls_logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_gate(x)[0]


@register_model("ensemble", "classify", "Majority vote of classifiers (default: ResNet-18, ResNet-50, Inception-v3)")
def ensemble(
    members: Sequence[str] = ("resnet18", "resnet50", "inception-v3"), member_kwargs: Sequence[dict] | None = None
) -> MajorityVote:
    return MajorityVote(members, member_kwargs)


@register_model("gated", "segment", "Classifier-gated segmenter: mask drawn only on slices classified as tumor")
def gated(
    classifier: str = "resnet18",
    segmenter: str = "unet-mini",
    classifier_kwargs: dict | None = None,
    segmenter_kwargs: dict | None = None,
    threshold: float = 0.5,
) -> GatedSegmenter:
    return GatedSegmenter(classifier, segmenter, classifier_kwargs, segmenter_kwargs, threshold)


def composite_kwargs(arch: str, parts: Sequence[tuple[str, dict]]) -> dict:
    """The ``arch_kwargs`` of an ``ensemble`` or ``gated`` model made of ``parts`` ((arch, arch_kwargs) pairs).

    Raises:
        ValueError: another ``arch``, a part of the wrong task, or ``gated`` without exactly [classifier, segmenter].
    """
    if arch == "ensemble":
        for name, _ in parts:
            _require_task(name, "classify", "ensemble member")
        return {"members": [a for a, _ in parts], "member_kwargs": [dict(k) for _, k in parts]}
    if arch == "gated":
        if len(parts) != 2:
            raise ValueError(f"gated needs parts [classifier, segmenter], got {len(parts)} parts")
        (classifier, classifier_kwargs), (segmenter, segmenter_kwargs) = parts
        _require_task(classifier, "classify", "the gate (first part)")
        _require_task(segmenter, "segment", "the segmenter (second part)")
        return {"classifier": classifier, "classifier_kwargs": dict(classifier_kwargs),
                "segmenter": segmenter, "segmenter_kwargs": dict(segmenter_kwargs)}
    raise ValueError(f"assemble supports 'ensemble' and 'gated', got {arch!r}")


def assemble(arch: str, parts: Sequence[LGGModel], **kwargs) -> LGGModel:
    """Combine separately trained models into an ``ensemble`` or ``gated`` model, copying their weights.

    Args:
        arch: ``"ensemble"`` (``parts`` = classifiers) or ``"gated"`` (``parts`` = [classifier, segmenter]).
        parts: Trained models; their arch and arch_kwargs are recorded in the new model's config.
        **kwargs: Further builder kwargs, e.g. ``threshold`` for ``gated``.

    Returns:
        The combined model, in eval mode.
    """
    model = LGGModel(arch, {**composite_kwargs(arch, [(p.arch, p.arch_kwargs) for p in parts]), **kwargs})
    targets = model.net.members if arch == "ensemble" else [model.net.classifier, model.net.segmenter]
    for target, part in zip(targets, parts):
        target.load_state_dict(part.net.state_dict())
    return model.eval()
