"""ONNX export of artifacts and a prediction backend that serves them with ONNX Runtime on CPU hosts.

The app calls :func:`load_predictor`; its ``Predictor.predict`` has the contract of
:func:`lgg_core.serving.inference.predict`. ``backend="auto"`` on a host without a GPU serves the path recorded in
``serving.json`` (the fastest measured on this host, see :mod:`lgg_core.serving.cpu_paths`) while that record holds;
without a valid record it uses ONNX Runtime when an up-to-date ``model.onnx`` sits beside ``model.safetensors`` and
reproduces the weights' outputs, PyTorch otherwise. Grad-CAM needs gradients, so it stays on
PyTorch: use ``Predictor.model`` of a PyTorch predictor or :func:`lgg_core.serving.artifacts.load_artifact`.

Example::

    export_artifact("artifacts/unet-mini")                  # writes artifacts/unet-mini/model.onnx
    predictor = load_predictor("artifacts/unet-mini")       # ONNX Runtime on a CPU host
    probabilities = predictor.predict(slices_uint8)         # (N, H, W) for a segmenter, (N,) for a classifier
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from lgg_core.serving.artifact_config import ArtifactConfig
from lgg_core.serving.artifacts import artifact_inputs, load_artifact, read_config
from lgg_core.serving.catalog import missing_weights_message
from lgg_core.serving.cpu_paths import INT8_FILE, ONNX_FILES, PATHS, recorded_path
from lgg_core.serving.device import pick_device
from lgg_core.serving.hub import ONNX_FILE
from lgg_core.serving.inference import predict, probabilities
from lgg_core.serving.postprocess import flip_tta
from lgg_core.data.transforms import normalize, resize_input

INPUT_NAME, OUTPUT_NAME = "image", "logits"
OPSET = 18
NATIVE_SIZE = 256
# Max |onnx - torch| allowed, relative to the logits' scale (at least 1): float32 kernels differ in summation order,
# and randomly initialised deep nets produce logits in the thousands where 1e-4 absolute would be noise.
PARITY_TOLERANCE = 1e-4
BACKENDS = ("auto", *PATHS)
# Stored in the .onnx so a file exported from other weights is never served.
WEIGHTS_HASH_KEY = "lgg_weights_sha256"


class OnnxBackendError(ValueError):
    """Export or ONNX inference is impossible for this artifact; the message says why and what to do."""


def weights_sha256(artifact_dir: str | Path) -> str:
    """SHA-256 of the artifact's model.safetensors."""
    digest = hashlib.sha256()
    with open(Path(artifact_dir) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_model(model: nn.Module, path: str | Path, input_size: int = NATIVE_SIZE,
                 metadata: dict[str, str] | None = None) -> Path:
    """Export an eval-mode model to ONNX with a dynamic batch axis, atomically.

    Uses the torch.export-based exporter (the default since torch 2.9; the TorchScript one is deprecated and
    cannot trace SegNet's max-unpooling).

    Args:
        model: Segmenter or classifier taking (B, 3, input_size, input_size).
        path: Target .onnx file.
        input_size: Fixed spatial size of the graph.
        metadata: Extra string key/values stored in the file's metadata_props.
    """
    path = Path(path)
    example = torch.randn(2, 3, input_size, input_size)
    # torch.export's notes on dynamic shapes and onnx_ir's on SegNet's unpooling attributes are for exporter
    # developers, not for users of `lgg export-onnx`; parity is checked afterwards anyway.
    onnx_ir_logger = logging.getLogger("onnx_ir")
    level = onnx_ir_logger.level
    onnx_ir_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                model.eval(), (example,), dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME], dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False,
            )
    finally:
        onnx_ir_logger.setLevel(level)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    program.save(str(tmp))
    if metadata:
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, metadata)
        onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return path


def _session(path: str | Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    # Same thread count as torch (which honours OMP_NUM_THREADS), so the app shares CPUs and benchmarks are fair.
    options.intra_op_num_threads = torch.get_num_threads()
    # The app holds one session per model: spinning pools would keep the cores busy between requests.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@torch.no_grad()
def max_abs_diff(
    model: nn.Module, onnx_path: str | Path, input_size: int, batch: int = 2, seed: int = 0
) -> tuple[float, float]:
    """Max |ONNX Runtime - PyTorch| on a random batch, and the tolerance it must stay under."""
    x = torch.randn(batch, 3, input_size, input_size, generator=torch.Generator().manual_seed(seed))
    reference = model.eval()(x).numpy()
    got = _session(onnx_path).run(None, {INPUT_NAME: x.numpy()})[0]
    if got.shape != reference.shape:
        raise OnnxBackendError(f"{onnx_path} returned shape {got.shape}, PyTorch {reference.shape}")
    return float(np.abs(got - reference).max()), PARITY_TOLERANCE * max(1.0, float(np.abs(reference).max()))


def export_artifact(artifact_dir: str | Path) -> Path:
    """Export an artifact's model to ``model.onnx`` beside its weights and prove parity with PyTorch.

    The graph takes the model's input size (``training.input_size``, else 256) and records the hash of the
    weights it came from.

    Raises:
        OnnxBackendError: The ONNX output differs from PyTorch beyond the tolerance (the file is removed).
        FileNotFoundError: The folder is not an artifact.
    """
    folder = Path(artifact_dir)
    model, config = load_artifact(folder)
    spec = ArtifactConfig.parse(config)
    size = _graph_size(spec)
    path = export_model(model, folder / ONNX_FILE, size, metadata={WEIGHTS_HASH_KEY: weights_sha256(folder),
                                                                  "arch": spec.arch})
    diff, tolerance = max_abs_diff(model, path, size)
    if diff > tolerance:
        path.unlink()
        raise OnnxBackendError(f"{folder}: ONNX output differs from PyTorch by {diff:.3g} (> {tolerance:.3g})")
    return path


def _graph_size(spec: ArtifactConfig) -> int:
    return spec.training.input_size or NATIVE_SIZE


def onnx_status(artifact_dir: str | Path, name: str = ONNX_FILE) -> str | None:
    """None when the artifact's ONNX file ``name`` exists, is self-contained and declares its weights, else why not."""
    path = Path(artifact_dir) / name
    if not path.is_file():
        return f"{path} not found (run `lgg export-onnx {artifact_dir}`)"
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf raises assorted types for garbage
        return f"{path} is not a readable ONNX model ({type(err).__name__})"
    # Our exports are self-contained; external data could point anywhere on the server.
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return f"{path} refers to external data files, which are never loaded"
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get(WEIGHTS_HASH_KEY) != weights_sha256(artifact_dir):
        return f"{path} was exported from other weights (run `lgg export-onnx {artifact_dir}` again)"
    return None


def _parity_problem(model: nn.Module, artifact_dir: Path) -> str | None:
    """None when model.onnx computes what the weights compute (its declared hash alone proves nothing)."""
    path = artifact_dir / ONNX_FILE
    try:
        diff, tolerance = max_abs_diff(model, path, _graph_size(ArtifactConfig.parse(read_config(artifact_dir))))
    except Exception as err:  # ONNX Runtime rejects bad graphs with assorted types
        return f"{path} cannot run ({type(err).__name__}: {str(err)[:200]})"
    if not diff <= tolerance:  # also catches NaN
        return f"{path} differs from the weights' outputs by {diff:.3g} (> {tolerance:.3g})"
    return None


class OnnxPredictor:
    """ONNX Runtime (CPU) predictions for an artifact; same preprocessing and outputs as PyTorch.

    Attributes:
        backend: ``"onnxruntime"``.
        precision: ``"fp32"`` (model.onnx) or ``"int8"`` (model.int8.onnx).
        task: ``"segment"`` or ``"classify"``.
        inputs: What :meth:`predict` expects (:func:`~lgg_core.serving.artifacts.artifact_inputs`).
        config: The artifact's config.json.
    """

    backend = "onnxruntime"

    def __init__(self, artifact_dir: str | Path, precision: str = "fp32") -> None:
        if precision not in ONNX_FILES:
            raise ValueError(f"precision must be one of {tuple(ONNX_FILES)}, got {precision!r}")
        self.precision = precision
        self.config = read_config(artifact_dir)
        spec = ArtifactConfig.parse(self.config)
        self.task = spec.task
        self.inputs = artifact_inputs(self.config)
        # The graph's height and width are fixed at export, so every input is resized to them.
        self.input_size = _graph_size(spec)
        self.session = _session(Path(artifact_dir) / ONNX_FILES[precision])

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.session.run(None, {INPUT_NAME: x.numpy()})[0])

    def predict(self, images: np.ndarray, batch_size: int = 16, tta: bool = False) -> np.ndarray:
        """Tumor probabilities for uint8 slices (N, H, W, 3): (N, H, W) for segmenters, (N,) for classifiers."""
        out = []
        for start in range(0, len(images), batch_size):
            x = resize_input(normalize(images[start : start + batch_size]), self.input_size)
            logits = flip_tta(self._logits, x) if tta else self._logits(x)
            out.append(probabilities(logits, self.task, images.shape[1:3]))
        return np.concatenate(out) if out else np.zeros((0,), np.float32)


class TorchPredictor:
    """PyTorch predictions for an artifact (GPU when available); ``model`` is there for Grad-CAM.

    Attributes:
        backend: ``"pytorch"``.
        precision: ``"fp32"``, or ``"bf16"`` (autocast, channels_last; bf16 only where the device has it natively).
        task: ``"segment"`` or ``"classify"``.
        inputs: What :meth:`predict` expects (:func:`~lgg_core.serving.artifacts.artifact_inputs`).
        config: The artifact's config.json.
        model: The ``LGGModel`` in eval mode.
    """

    backend = "pytorch"

    def __init__(self, artifact_dir: str | Path, device: str | torch.device = "auto", precision: str = "fp32") -> None:
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.precision = precision
        self.model, self.config = load_artifact(artifact_dir, pick_device(str(device)))
        if precision == "bf16":
            # oneDNN's bf16 convolutions (AVX512-BF16, AMX) run on NHWC; NCHW would add a reorder per layer.
            self.model = self.model.to(memory_format=torch.channels_last)
        spec = ArtifactConfig.parse(self.config)
        self.task = spec.task
        self.inputs = artifact_inputs(self.config)
        self.input_size = spec.training.input_size

    def predict(self, images: np.ndarray, batch_size: int = 16, tta: bool = False) -> np.ndarray:
        """Tumor probabilities for uint8 slices (N, H, W, 3): (N, H, W) for segmenters, (N,) for classifiers."""
        return predict(self.model, images, self.task, batch_size, self.input_size, tta=tta,
                       mixed_precision=self.precision == "bf16")


Predictor = OnnxPredictor | TorchPredictor


def _recorded_predictor(folder: Path) -> Predictor | None:
    """The predictor of the path serving.json records, when the record holds here; else None (with a warning when
    a record exists), and the caller falls back to the fp32 rule."""
    path, problem = recorded_path(folder)
    if path == "onnxruntime-int8":
        problem = onnx_status(folder, INT8_FILE)
    if problem is not None:
        warnings.warn(f"not serving {folder} through its recorded path: {problem}", stacklevel=3)
        return None
    if path is None or path == "onnxruntime":
        return None  # model.onnx is served by the caller, after its parity check
    engine, precision = PATHS[path]
    return TorchPredictor(folder, "cpu", precision) if engine == "pytorch" else OnnxPredictor(folder, precision)


def load_predictor(artifact_dir: str | Path, backend: str = "auto") -> Predictor:
    """A predictor for an artifact folder.

    Args:
        artifact_dir: Artifact folder (local, or pulled with :func:`lgg_core.serving.catalog.resolve_entry`).
        backend: ``"auto"`` (on hosts without a GPU: the path serving.json records while it holds, else ONNX
            Runtime when an up-to-date model.onnx exists, else PyTorch; on GPU hosts PyTorch), or a path of
            :data:`lgg_core.serving.cpu_paths.PATHS`: ``"pytorch"``, ``"pytorch-bf16"``, ``"onnxruntime"`` (fp32)
            or ``"onnxruntime-int8"``.

    Raises:
        ValueError: Unknown backend.
        OnnxBackendError: ``"onnxruntime"`` requested but model.onnx is missing, stale, unreadable, refers to
            external data or does not reproduce the weights' outputs on a random batch; ``"onnxruntime-int8"``
            requested but model.int8.onnx is missing, stale, unreadable or refers to external data.
        FileNotFoundError: The folder is not an artifact.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    folder = Path(artifact_dir)
    if not (folder / "model.safetensors").is_file():
        if (folder / "config.json").is_file() and ArtifactConfig.parse(read_config(folder)).parts is not None:
            return TorchPredictor(folder)  # assembled from other artifacts: there is nothing to export on its own
        raise FileNotFoundError(missing_weights_message(folder) if (folder / "config.json").is_file()
                                else f"{folder} is not a model artifact: model.safetensors is missing")
    if backend == "pytorch" or (backend == "auto" and pick_device().type != "cpu"):
        return TorchPredictor(folder)
    if backend == "pytorch-bf16":
        return TorchPredictor(folder, "cpu", "bf16")
    if backend == "onnxruntime-int8":
        if problem := onnx_status(folder, INT8_FILE):
            raise OnnxBackendError(problem)
        return OnnxPredictor(folder, "int8")
    if backend == "auto" and (recorded := _recorded_predictor(folder)) is not None:
        return recorded
    problem, checked = onnx_status(folder), None
    if problem is None:
        checked = TorchPredictor(folder, "cpu")
        problem = _parity_problem(checked.model, folder)
        if problem is None:
            return OnnxPredictor(folder)
    if backend == "onnxruntime":
        raise OnnxBackendError(problem)
    if (folder / ONNX_FILE).is_file():
        warnings.warn(f"serving {folder} with PyTorch: {problem}", stacklevel=2)
    return checked or TorchPredictor(folder)


MAX_FOREIGN_BYTES = 512 << 20  # the zoo's largest graph is ~100 MB
STANDARD_DOMAINS = frozenset({"", "ai.onnx"})


def _foreign_problem(proto: onnx.ModelProto) -> str | None:
    """Why a stranger's graph may not run here (None: it may): custom operators, external data, wrong signature."""
    domains = {n.domain for n in proto.graph.node} | {o.domain for o in proto.opset_import}
    if custom := sorted(domains - STANDARD_DOMAINS):
        return f"it uses custom operators (domains {', '.join(custom)}), which are never loaded"
    if proto.functions:
        return "it defines its own functions, which are never run"
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return "it refers to external data files, which are never loaded"
    initializers = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        return f"it takes {len(inputs)} inputs and gives {len(proto.graph.output)} outputs; one of each is expected"
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or (dims[1].HasField("dim_value") and dims[1].dim_value != 3):
        return "its input is not N x 3 x H x W"
    return None


class ForeignOnnxSegmenter:
    """A segmenter trained elsewhere, as a self-contained ONNX graph: N x 3 x H x W float input, logits out.

    The input is what the zoo's models see (:func:`lgg_core.data.transforms.normalize`: the three sequences scaled
    to [0, 1], then ImageNet mean and std), at the graph's fixed height and width or 256 when they are free; its
    logits (N x 1 x h x w or N x h x w) are resized back to the slice and passed through a sigmoid.

    Raises:
        OnnxBackendError: the file is too large, unreadable, uses custom operators or external data, or does not
            take one N x 3 x H x W input.
    """

    backend, precision, task, inputs = "onnxruntime", "fp32", "segment", "sequences"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if path.stat().st_size > MAX_FOREIGN_BYTES:
            raise OnnxBackendError(f"{path.name} is larger than {MAX_FOREIGN_BYTES >> 20} MiB")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as err:  # protobuf raises assorted types for garbage
            raise OnnxBackendError(f"{path.name} is not a readable ONNX model") from err
        if problem := _foreign_problem(proto):
            raise OnnxBackendError(f"{path.name} cannot be run: {problem}")
        dims = proto.graph.input[0].type.tensor_type.shape.dim
        sizes = [d.dim_value if d.HasField("dim_value") else None for d in dims[2:]]
        self.input_size = sizes[0] if sizes[0] and sizes[0] == sizes[1] else NATIVE_SIZE
        self.input_name = proto.graph.input[0].name
        try:
            self.session = _session(path)
        except Exception as err:  # ONNX Runtime rejects bad graphs with assorted types
            raise OnnxBackendError(f"{path.name} cannot be run by ONNX Runtime ({type(err).__name__})") from err

    def predict(self, images: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """Tumor probabilities (N, H, W) for uint8 slices (N, H, W, 3).

        Raises:
            OnnxBackendError: the graph fails on the input or returns another shape.
        """
        out = []
        for start in range(0, len(images), batch_size):
            x = resize_input(normalize(images[start : start + batch_size]), self.input_size)
            try:
                logits = torch.from_numpy(np.asarray(self.session.run(None, {self.input_name: x.numpy()})[0]))
            except Exception as err:  # ONNX Runtime raises assorted types at run time
                raise OnnxBackendError(f"the model failed on a batch ({type(err).__name__})") from err
            if logits.ndim == 3:
                logits = logits[:, None]
            if logits.ndim != 4 or logits.shape[:2] != (len(x), 1):
                raise OnnxBackendError(f"the model returned shape {tuple(logits.shape)}; N x 1 x H x W logits are "
                                       "expected")
            out.append(probabilities(logits, "segment", images.shape[1:3]))
        return np.concatenate(out) if out else np.zeros((0, *images.shape[1:3]), np.float32)
