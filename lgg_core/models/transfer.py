"""In-domain transfer: start a segmenter's encoder from a tumor classifier trained on the same patients.

ImageNet weights need a download; where there is none, freezing an encoder's randomly initialised layers compares
nothing. The project's own ResNet classifiers learn FLAIR features on the training patients, and torchvision's ResNet
and smp's ResNet encoders share their layer names, so the classifier's backbone drops into the encoder as it is.
"""
from __future__ import annotations

from pathlib import Path

from huggingface_hub.constants import SAFETENSORS_SINGLE_FILE

from .hub_model import ArtifactError, LGGModel, check_artifact, load_weights


def init_encoder_from_classifier(model: LGGModel, classifier_dir: str | Path) -> int:
    """Copy a classifier artifact's backbone into ``model``'s encoder; returns the number of tensors copied.

    Every encoder tensor must come from the classifier with the same shape (its head is left out), so a ResNet-50
    classifier fits a ResNet-50 encoder and nothing else.

    Raises:
        ArtifactError: the artifact is not a classifier, fails its checks, or does not cover the encoder.
        ValueError: ``model`` has no encoder (not an smp segmenter).
    """
    config = check_artifact(classifier_dir)
    if config.get("task") != "classify":
        raise ArtifactError(f"{classifier_dir} is a {config.get('task')!r} model, not a classifier")
    encoder = getattr(model.net, "encoder", None)
    if encoder is None:
        raise ValueError(f"{model.arch} has no encoder to initialise")
    state = load_weights(Path(classifier_dir) / SAFETENSORS_SINGLE_FILE)
    backbone = {key.removeprefix("net."): t for key, t in state.items()}
    target = encoder.state_dict()
    missing = sorted(k for k in target if k not in backbone or backbone[k].shape != target[k].shape)
    if missing:
        raise ArtifactError(
            f"{classifier_dir} ({config['arch']}) does not fit {model.arch}'s encoder: {len(missing)} tensors missing "
            f"or of another shape, e.g. {missing[:3]}"
        )
    encoder.load_state_dict({k: backbone[k] for k in target})
    return len(target)


def init_from_artifact(model: LGGModel, artifact_dir: str | Path) -> int:
    """Start ``model`` from every weight of a trained artifact of the same architecture; returns the tensors copied.

    A longer run, or a fine-tune at a larger input size, continues from the earlier run's model this way.

    Raises:
        ArtifactError: the artifact fails its checks or is another architecture (or the same with other arguments).
    """
    config = check_artifact(artifact_dir)
    if (config.get("arch"), config.get("arch_kwargs", {})) != (model.arch, model.arch_kwargs):
        raise ArtifactError(f"{artifact_dir} is {config.get('arch')} {config.get('arch_kwargs', {})}, not "
                            f"{model.arch} {model.arch_kwargs}: only the same model can continue from it")
    state = load_weights(Path(artifact_dir) / SAFETENSORS_SINGLE_FILE)
    model.load_state_dict(state)
    return len(state)
