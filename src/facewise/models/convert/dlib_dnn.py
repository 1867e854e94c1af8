"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) as an ONNX graph.

dlib serialises a network as nested ``add_layer`` objects, outermost first: each writes its version, then its
sub-network, then its own layer's details and state, so the file holds the loss layer, one version number per
layer (tags and skips included), the input layer, then each layer's details from the input upwards. Tags,
skips and which tag an ``add_prev`` reads are not in the file (they are the C++ type), so this converter knows
one architecture: ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``, and refuses a file whose layer
sequence differs from it. The rules it follows, from dlib's source (``dnn/layers.h``, ``core.h``,
``input.h``, ``tensor.h``, ``serialize.h``, ``cpu_dlib.cpp``):

* integers: one byte ``size | 0x80 if negative``, then ``size`` little-endian bytes; strings: length, bytes;
  bools: the character ``'0'`` or ``'1'``; floats/doubles: mantissa and exponent integers (value m * 2^e);
  tensors: version 2, n, k, nr, nc, then n*k*nr*nc little-endian float32;
* ``con_4``: one parameter tensor holding the filters (num_filters, k, nr, nc) then the biases; padding as
  stored (dlib's default: 0 when the stride is not 1, else nr/2);
* ``affine_``: gamma then beta per channel (``bn_con`` folded at save time): y = gamma * x + beta;
* ``max_pool_2`` / ``avg_pool_2``: window, stride and padding as stored; window 0 means the whole image;
* ``add_prev_``: the output takes the larger of the two inputs' sizes in every dimension and the smaller
  input counts as zero outside its own extent (top-left aligned), e.g. 32 channels + 64 channels, or a 3x3
  block output + a 4x4 pooled shortcut;
* ``fc_2`` without bias: weights (num_inputs, num_outputs), y = x W;
* ``input_rgb_image_sized<150>``: channel planes R, G, B, each (pixel - mean) / 256.

The graph takes uint8 RGB chips (N, 150, 150, 3), N dynamic, and returns dlib's raw 128-d descriptors
(not normalised). Each ``affine`` is folded into the convolution before it.
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facewise import settings
from facewise.errors import ModelIntegrityError

log = logging.getLogger(__name__)

CONVERTER_VERSION = 1
TOLERANCE = 1e-4  # the largest |onnx - dlib| accepted on any descriptor coordinate
OPSET = 17


class DatFormatError(ModelIntegrityError):
    """The .dat file is not the network this converter knows."""

    code = "model_format"


# ---------------------------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DatFormatError(f"dlib .dat: truncated at byte {self.pos} (wanted {n} more)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def integer(self) -> int:
        head = self._take(1)[0]
        size = head & 0x0F
        if head & 0x70 or size > 8:
            raise DatFormatError(f"dlib .dat: bad integer header 0x{head:02x} at byte {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if head & 0x80 else value

    def string(self) -> str:
        n = self.integer()
        if not 0 <= n < 256:
            raise DatFormatError(f"dlib .dat: bad string length {n} at byte {self.pos}")
        return self._take(n).decode("ascii", errors="replace")

    def boolean(self) -> bool:
        c = self._take(1)
        if c not in (b"0", b"1"):
            raise DatFormatError(f"dlib .dat: bad bool {c!r} at byte {self.pos - 1}")
        return c == b"1"

    def number(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        if abs(exponent) > 2000:  # dlib's codes for inf / nan
            raise DatFormatError(f"dlib .dat: non-finite number at byte {self.pos}")
        return math.ldexp(float(mantissa), exponent)

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise DatFormatError(f"dlib .dat: tensor version {version} at byte {self.pos} (expected 2)")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, ...]:
        version = self.integer()
        if version != 1:
            raise DatFormatError(f"dlib .dat: alias_tensor version {version} at byte {self.pos}")
        return tuple(self.integer() for _ in range(4))


@dataclass
class Layer:
    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc
    params: np.ndarray | None = None
    info: dict[str, int] = field(default_factory=dict)


def _read_layer(r: _Reader) -> Layer:
    name = r.string()
    if name == "con_4":
        params = r.tensor()
        keys = ("num_filters", "nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        info = {k: r.integer() for k in keys}
        filters, _biases = r.alias(), r.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.number()
        info["k"] = filters[1]
        return Layer("con", params, info)
    if name == "affine_":
        params = r.tensor()
        gamma, _beta = r.alias(), r.alias()
        mode = r.integer()
        if mode != 0:
            raise DatFormatError(f"dlib .dat: affine_ in mode {mode}, expected 0 (per channel)")
        return Layer("affine", params, {"channels": gamma[1]})
    if name == "relu_":
        return Layer("relu")
    if name in ("max_pool_2", "avg_pool_2"):
        window = ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        return Layer(name[:-2], None, {k: r.integer() for k in window})
    if name == "add_prev_":
        return Layer("add_prev")
    if name == "fc_2":
        outputs, inputs = r.integer(), r.integer()
        params = r.tensor()
        r.alias(), r.alias()
        bias_mode = r.integer()
        for _ in range(4):
            r.number()
        if bias_mode != 1:
            raise DatFormatError("dlib .dat: fc_ layer with a bias; this network's has none")
        return Layer("fc", params, {"outputs": outputs, "inputs": inputs})
    raise DatFormatError(f"dlib .dat: layer {name!r} is not part of dlib's face-recognition ResNet")


# ------------------------------------------------------------------------------------ the architecture


def _ares(n: int) -> list[tuple[Any, ...]]:
    return [("tag", 1), ("con", n, 3, 1), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",),
            ("add_prev", 1), ("relu",)]


def _ares_down(n: int) -> list[tuple[Any, ...]]:
    return [("tag", 1), ("con", n, 3, 2), ("affine",), ("relu",), ("con", n, 3, 1), ("affine",),
            ("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)]


def anet_ops() -> list[tuple[Any, ...]]:
    """``anet_type`` from the input up: dlib's face-recognition ResNet (29 conv layers)."""
    ops: list[tuple[Any, ...]] = [("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2)]
    for block in ([_ares(32)] * 3 + [_ares_down(64)] + [_ares(64)] * 3 + [_ares_down(128)] + [_ares(128)] * 2
                  + [_ares_down(256)] + [_ares(256)] * 2 + [_ares_down(256)]):
        ops += block
    return [*ops, ("avg_pool", 0, 1), ("fc", 128)]


@dataclass
class DlibNet:
    mean_rgb: tuple[float, float, float]
    size: int
    layers: list[Layer]  # from the input up, tags and skips excluded


def read_dat(path: Path) -> DlibNet:
    """Parse a face-recognition ResNet .dat; :class:`DatFormatError` if it is anything else."""
    r = _Reader(Path(path).read_bytes())
    if r.integer() != 1 or r.string() != "loss_metric_2":
        raise DatFormatError(f"{path}: not a dlib metric-loss network (dlib_face_recognition_resnet_model_v1)")
    r.number(), r.number()  # margin, distance threshold (training only)
    ops = anet_ops()
    want_versions = [1 if op[0] in ("tag", "skip") else 2 for op in reversed(ops)]
    want_versions[-1] = 3  # the layer that holds the input layer
    versions = [r.integer() for _ in want_versions]
    if versions != want_versions:
        raise DatFormatError(f"{path}: the layer nesting differs from dlib's face-recognition ResNet")
    if r.string() != "input_rgb_image_sized":
        raise DatFormatError(f"{path}: the input layer is not input_rgb_image_sized")
    mean = (r.number(), r.number(), r.number())
    nr, nc = r.integer(), r.integer()
    if nr != nc:
        raise DatFormatError(f"{path}: input {nr}x{nc} is not square")
    layers: list[Layer] = []
    for op in ops:
        if op[0] in ("tag", "skip"):
            continue
        layer = _read_layer(r)
        if layer.kind != op[0]:
            raise DatFormatError(f"{path}: layer {len(layers)} is {layer.kind}, expected {op[0]}")
        _check(layer, op, path)
        r.boolean(), r.boolean(), r.boolean()  # setup called, gradient stale, output disabled
        r.tensor(), r.tensor(), r.tensor()  # x_grad, cached output, params_grad / grad_final (empty)
        if not layers:  # the version-3 layer over the input also keeps its sample expansion factor
            r.integer()
        layers.append(layer)
    if r.pos != len(r.data):
        raise DatFormatError(f"{path}: {len(r.data) - r.pos} bytes left after the last layer")
    return DlibNet(mean, nr, layers)


def _check(layer: Layer, op: tuple[Any, ...], path: Path) -> None:
    i = layer.info
    if op[0] == "con":
        got = (i["num_filters"], i["nr"], i["stride_y"])
        if got != op[1:] or i["nc"] != i["nr"] or i["stride_x"] != i["stride_y"]:
            raise DatFormatError(f"{path}: conv {got} where dlib's ResNet has {op[1:]}")
    elif op[0] in ("max_pool", "avg_pool"):
        if (i["nr"], i["stride_y"]) != op[1:] or i["nc"] != i["nr"] or i["stride_x"] != i["stride_y"]:
            raise DatFormatError(f"{path}: {op[0]} {i} where dlib's ResNet has {op[1:]}")
    elif op[0] == "fc" and i["outputs"] != op[1]:
        raise DatFormatError(f"{path}: fc with {i['outputs']} outputs, expected {op[1]}")


# ------------------------------------------------------------------------------------------- the graph


def build_onnx(net: DlibNet) -> Any:
    """An ``onnx.ModelProto``: uint8 RGB chips (N, size, size, 3) in, raw descriptors (N, 128) out."""
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    mean = np.asarray(net.mean_rgb, np.float32).reshape(1, 1, 1, 3)
    x = node("Cast", ["chips"], "as_float", to=TensorProto.FLOAT)
    x = node("Sub", [x, const("mean_rgb", mean)], "centred")
    x = node("Mul", [x, const("scale", np.array(1 / 256, np.float32))], "scaled")
    x = node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    shape = (3, net.size, net.size)  # C, H, W of the current tensor
    tags: dict[int, tuple[str, tuple[int, int, int]]] = {}
    layers = iter(net.layers)
    ops = anet_ops()
    n = 0
    while n < len(ops):
        op = ops[n]
        n += 1
        kind = op[0]
        if kind == "tag":
            tags[op[1]] = (x, shape)
            continue
        if kind == "skip":
            x, shape = tags[op[1]]
            continue
        layer = next(layers)
        name = f"l{n}_{kind}"
        if kind == "con":
            w, b = _conv_weights(layer)
            if n < len(ops) and ops[n][0] == "affine":  # fold y = gamma * conv(x) + beta into the conv
                gamma, beta = _affine(next(layers), w.shape[0])
                w, b = w * gamma[:, None, None, None], b * gamma + beta
                n += 1
            i = layer.info
            x = node("Conv", [x, const(f"{name}_w", w.astype(np.float32)), const(f"{name}_b", b.astype(np.float32))],
                     name, kernel_shape=[i["nr"], i["nc"]], strides=[i["stride_y"], i["stride_x"]],
                     pads=[i["padding_y"], i["padding_x"], i["padding_y"], i["padding_x"]])
            shape = (w.shape[0], _out(shape[1], i["nr"], i["stride_y"], i["padding_y"]),
                     _out(shape[2], i["nc"], i["stride_x"], i["padding_x"]))
        elif kind == "affine":
            gamma, beta = _affine(layer, shape[0])
            x = node("Mul", [x, const(f"{name}_g", gamma.reshape(1, -1, 1, 1).astype(np.float32))], f"{name}_mul")
            x = node("Add", [x, const(f"{name}_b", beta.reshape(1, -1, 1, 1).astype(np.float32))], name)
        elif kind == "relu":
            x = node("Relu", [x], name)
        elif kind in ("max_pool", "avg_pool"):
            i = layer.info
            if i["nr"] == 0 and i["stride_y"] == 1:
                x = node("GlobalAveragePool" if kind == "avg_pool" else "GlobalMaxPool", [x], name)
                shape = (shape[0], 1, 1)
            else:
                x = node("MaxPool" if kind == "max_pool" else "AveragePool", [x], name,
                         kernel_shape=[i["nr"], i["nc"]], strides=[i["stride_y"], i["stride_x"]],
                         pads=[i["padding_y"], i["padding_x"], i["padding_y"], i["padding_x"]])
                shape = (shape[0], _out(shape[1], i["nr"], i["stride_y"], i["padding_y"]),
                         _out(shape[2], i["nc"], i["stride_x"], i["padding_x"]))
        elif kind == "add_prev":
            other, other_shape = tags[op[1]]
            big = (max(shape[0], other_shape[0]), max(shape[1], other_shape[1]), max(shape[2], other_shape[2]))
            lhs = _pad_to(x, shape, big, f"{name}_a", node, const)
            rhs = _pad_to(other, other_shape, big, f"{name}_b", node, const)
            x, shape = node("Add", [lhs, rhs], name), big
        elif kind == "fc":
            weights = layer.params
            assert weights is not None
            w = weights.reshape(layer.info["inputs"], layer.info["outputs"])
            if w.shape[0] != shape[0] * shape[1] * shape[2]:
                raise DatFormatError(f"fc takes {w.shape[0]} inputs, the network gives {shape}")
            x = node("Flatten", [x], f"{name}_flat", axis=1)
            x = node("MatMul", [x, const(f"{name}_w", w.astype(np.float32))], "descriptor")
    graph = helper.make_graph(
        nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["N", net.size, net.size, 3])],
        [helper.make_tensor_value_info("descriptor", TensorProto.FLOAT, ["N", 128])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="facewise", producer_version=str(CONVERTER_VERSION))
    model.ir_version = 8  # readable by onnxruntime >= 1.17
    return model


def _out(size: int, window: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - window) // stride + 1


def _conv_weights(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    i, p = layer.info, layer.params
    assert p is not None
    flat = p.reshape(-1).astype(np.float64)
    count = i["num_filters"] * i["k"] * i["nr"] * i["nc"]
    if flat.size != count + i["num_filters"]:
        raise DatFormatError(f"conv parameters: {flat.size} values, expected {count + i['num_filters']}")
    return flat[:count].reshape(i["num_filters"], i["k"], i["nr"], i["nc"]), flat[count:]


def _affine(layer: Layer, channels: int) -> tuple[np.ndarray, np.ndarray]:
    if layer.kind != "affine" or layer.params is None or layer.params.size != 2 * channels:
        raise DatFormatError(f"expected an affine layer over {channels} channels, got {layer.kind}")
    flat = layer.params.reshape(-1).astype(np.float64)
    return flat[:channels], flat[channels:]


def _pad_to(x: str, shape: tuple[int, int, int], big: tuple[int, int, int], name: str, node: Any,
            const: Any) -> str:
    """``x`` zero-padded at the end of each dimension up to ``big`` (dlib's add of unequal tensors)."""
    extra = [b - s for s, b in zip(shape, big, strict=True)]
    if not any(extra):
        return x
    pads = np.array([0, 0, 0, 0, 0, *extra], np.int64)
    return str(node("Pad", [x, const(f"{name}_pads", pads)], f"{name}_pad", mode="constant"))


# ------------------------------------------------------------------------------------------ the check


def check_chips() -> np.ndarray:
    """Deterministic 150x150 RGB chips for the conversion check: noise, smooth blobs and gradients (they
    drive every filter; the tests compare on real LFW faces)."""
    import cv2

    rng = np.random.default_rng(150)
    noise = rng.integers(0, 256, (150, 150, 3), dtype=np.uint8)
    blobs = cv2.resize(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), (150, 150), interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(0, 255, 150, dtype=np.float32)
    grad = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, ramp[::-1]) / 2,
                     np.full((150, 150), 128.0)], axis=-1).astype(np.uint8)
    return np.stack([noise, blobs, grad])


def dlib_descriptors(dat: Path, chips: np.ndarray) -> np.ndarray:
    """Raw descriptors from dlib itself."""
    import dlib

    net = dlib.face_recognition_model_v1(str(dat))
    vecs = net.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
    return np.array([np.asarray(v) for v in vecs], np.float32)


def max_difference(onnx_path: Path, dat: Path, chips: np.ndarray, threads: int = 1) -> float:
    """Largest |onnx - dlib| over every coordinate of the chips' raw descriptors (one batch)."""
    from facewise.models.runtime import onnx_session

    sess = onnx_session(onnx_path, threads)
    got = sess.run(None, {"chips": np.ascontiguousarray(chips, np.uint8)})[0]
    return float(np.abs(got - dlib_descriptors(dat, chips)).max())


def convert(dat: Path, out: Path) -> float:
    """Write the ONNX graph of ``dat`` to ``out`` (temp file + rename) once it matches dlib to
    :data:`TOLERANCE`; returns the largest difference seen, or :class:`ModelIntegrityError`."""
    import onnx

    model = build_onnx(read_dat(dat))
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp", delete=False) as fh:
        fh.write(model.SerializeToString())
        tmp = Path(fh.name)
    try:
        diff = max_difference(tmp, dat, check_chips())
        if not diff <= TOLERANCE:
            raise ModelIntegrityError(f"{dat}: the converted ONNX graph differs from dlib by {diff:.2e} "
                                      f"(more than {TOLERANCE:g}) on the check chips; not used")
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return diff


def cached_onnx(dat: Path) -> Path:
    """The ONNX graph of ``dat`` in the model cache (``converted/``, named by the .dat's sha256 and
    :data:`CONVERTER_VERSION`), converted and checked against dlib on first use."""
    from facewise.models.catalogue import sha256_file

    out = settings.model_cache_dir() / "converted" / f"dlib-resnet-{sha256_file(dat)[:16]}-c{CONVERTER_VERSION}.onnx"
    if not out.is_file():
        log.info("converting %s to ONNX once (cached at %s)", dat.name, out)
        diff = convert(dat, out)
        log.info("%s: ONNX graph written, largest difference from dlib %.1e", dat.name, diff)
    return out
