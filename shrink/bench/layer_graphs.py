"""Layer subgraphs cut from a dense model's ONNX export, rebuilt at any (c_in, c_out).

A layer is a Conv, Gemm or MatMul whose weight is a constant and that belongs to a torch module
(found by its weight's name, or the exporter's name scopes). It is timed together with the
elementwise ops onnxruntime fuses into it or runs right after it on the same tensor (its
"epilogue": the activation, a bias add, a residual add whose other input exists before the layer
runs, a squeeze-excitation gate), because that is how the runtime runs it. Each elementwise node
belongs to one layer at most. What is not in any layer (pooling, LayerNorm, transposes, reshapes)
is left to the table's whole-model calibration.
"""

from __future__ import annotations

import ast
import hashlib
import json
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

LAYER_OPS = ("Conv", "Gemm", "MatMul")
ELEMENTWISE = frozenset({
    "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "LeakyRelu", "Gelu", "Erf", "Tanh", "Softplus",
    "Mul", "Add", "Sub", "Div", "Neg", "Pow", "Sqrt", "BatchNormalization",
})  # fmt: skip
MAX_EPILOGUE = 12  # nodes; a longer elementwise chain is not one layer's epilogue


@dataclass
class LayerSite:
    """Where one layer sits in the dense graph, and what is needed to rebuild it at other widths."""

    name: str  # torch module
    node: onnx.NodeProto
    epilogue: list[onnx.NodeProto]
    x_shape: list[int]  # the layer's input shape
    externals: dict[str, list[int]]  # inputs of the epilogue made before the layer (residuals, gates)
    constants: dict[str, np.ndarray]  # initializers the epilogue reads
    outputs: list[str]  # tensors read outside the subgraph
    dense_cin: int
    dense_cout: int
    groups: int  # conv groups in the dense model
    depthwise: bool
    channel_axis: int  # 1 for NCHW convs, -1 for MatMul/Gemm
    kind: str = ""
    ops: tuple[str, ...] = ()
    out_shape: list[int] | None = None

    def pixels(self, shape: list[int] | None) -> int:
        """Positions per channel: H*W for a conv, tokens for a Linear."""
        if not shape:
            return 1
        inner = shape[2:] if self.channel_axis == 1 else shape[1:-1]
        return int(np.prod(inner)) if len(inner) else 1


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _shape(value: onnx.ValueInfoProto) -> list[int] | None:
    dims = value.type.tensor_type.shape.dim
    if not dims and not value.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else 0 for d in dims]


def _module_name(node: onnx.NodeProto, names: set[str]) -> str | None:
    if len(node.input) > 1 and node.input[1].endswith(".weight") and node.input[1][: -len(".weight")] in names:
        return node.input[1][: -len(".weight")]
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            return next((s for s in reversed(scopes) if s in names), None)
    return None


def find_sites(model: onnx.ModelProto, names: set[str]) -> tuple[list[LayerSite], list[str]]:
    """Sites of the layers whose module is in `names`, and the names not found as an isolable layer."""
    model = shape_inference.infer_shapes(model)
    graph = model.graph
    nodes = list(graph.node)
    inits = {t.name: t for t in graph.initializer}
    shapes = {v.name: _shape(v) for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
    shapes.update({name: list(t.dims) for name, t in inits.items()})
    produced_at = {out: i for i, n in enumerate(nodes) for out in n.output}
    consumers: dict[str, list[int]] = {}
    for i, n in enumerate(nodes):
        for name in n.input:
            consumers.setdefault(name, []).append(i)
    graph_outputs = {o.name for o in graph.output}
    claimed: set[int] = set()
    sites, found = [], set()
    for index, node in enumerate(nodes):
        if node.op_type not in LAYER_OPS or len(node.input) < 2 or node.input[1] not in inits:
            continue
        name = _module_name(node, names)
        if name is None or name in found:
            continue
        site = _site(node, name, inits, shapes)
        if site is None:
            continue
        site.out_shape = shapes.get(node.output[0])
        members = _grow_epilogue(site, index, nodes, consumers, produced_at, inits, shapes, claimed)
        site.outputs = _outputs(site, members, nodes, consumers, graph_outputs)
        sites.append(site)
        found.add(name)
    return sites, sorted(names - found)


def _site(node, name, inits, shapes) -> LayerSite | None:
    x_shape = shapes.get(node.input[0])
    weight = list(inits[node.input[1]].dims)
    if not x_shape or any(d <= 0 for d in x_shape[1:]):
        return None
    if node.op_type == "Conv":
        groups = int(_attrs(node).get("group", 1))
        cin, cout = x_shape[1], weight[0]
        depthwise = groups > 1 and groups == cin == cout
        return LayerSite(name, node, [], x_shape, {}, {}, [], cin, cout, groups, depthwise, 1)
    if node.op_type == "Gemm":
        attrs = _attrs(node)
        if attrs.get("transA", 0):
            return None
        cout = weight[0] if attrs.get("transB", 0) else weight[1]
        return LayerSite(name, node, [], x_shape, {}, {}, [], x_shape[-1], cout, 1, False, -1)
    if len(weight) != 2:  # MatMul against a 2-D constant: a Linear layer
        return None
    return LayerSite(name, node, [], x_shape, {}, {}, [], weight[0], weight[1], 1, False, -1)


def _grow_epilogue(site, index, nodes, consumers, produced_at, inits, shapes, claimed) -> set[int]:
    """Add elementwise consumers whose other inputs are constants, tensors of the subgraph, or
    tensors made before the layer (never after it: that would pull in the next layer's work).
    Returns the node indices of the subgraph."""
    inside, members = set(site.node.output), {index}
    changed = True
    while changed and len(site.epilogue) < MAX_EPILOGUE:
        changed = False
        for tensor in list(inside):
            for ci in consumers.get(tensor, []):
                c = nodes[ci]
                if ci in claimed or ci in members or c.op_type not in ELEMENTWISE:
                    continue
                others = [i for i in c.input if i and i not in inside]
                if not all(i in inits or produced_at.get(i, -1) < index for i in others):
                    continue
                if any(i not in inits and not shapes.get(i) for i in others):
                    continue
                site.epilogue.append(c)
                claimed.add(ci)
                members.add(ci)
                for i in others:
                    if i in inits:
                        site.constants[i] = numpy_helper.to_array(inits[i])
                    else:
                        site.externals[i] = shapes[i]
                inside.update(c.output)
                changed = True
    return members


def _outputs(site: LayerSite, members: set[int], nodes, consumers, graph_outputs) -> list[str]:
    produced = [o for i in sorted(members) for o in nodes[i].output]
    used_outside = [t for t in produced if t in graph_outputs or any(c not in members for c in consumers.get(t, []))]
    return used_outside or [produced[-1]]


# ----------------------------------------------------------------------------- kinds


def _masked(shape: list[int], axis: int, dense: int) -> list:
    out = list(shape)
    if out:
        out[0] = "N"
        if out[axis] == dense:
            out[axis] = "C"
    return out


def describe(site: LayerSite) -> None:
    """Fill site.kind (equal for layers that cost the same at the same widths) and site.ops."""
    attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in _attrs(site.node).items()}
    attrs.pop("group", None)
    signature = {
        "op": site.node.op_type,
        "attrs": {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in sorted(attrs.items())},
        "x": _masked(site.x_shape, 1 if site.channel_axis == 1 else len(site.x_shape) - 1, site.dense_cin),
        "cin": site.dense_cin, "cout": site.dense_cout, "groups": site.groups, "depthwise": site.depthwise,
        "epilogue": [[n.op_type, sorted((a.name, str(helper.get_attribute_value(a))) for a in n.attribute)] for n in site.epilogue],
        "externals": sorted(str(_masked(s, site.channel_axis, site.dense_cout)) for s in site.externals.values()),
    }  # fmt: skip
    digest = hashlib.sha256(json.dumps(signature, sort_keys=True, default=str).encode()).hexdigest()[:8]
    spatial = "x".join(str(d) for d in site.x_shape[2:]) if site.channel_axis == 1 else "x".join(str(d) for d in site.x_shape[1:-1])
    kernel = "x".join(str(k) for k in attrs.get("kernel_shape", [])) if site.node.op_type == "Conv" else ""
    tag = f"{site.node.op_type}{kernel}{'dw' if site.depthwise else ''}-{spatial or 'vec'}-{site.dense_cin}x{site.dense_cout}"
    site.kind = f"{tag}-{digest}"
    site.ops = (site.node.op_type,) + tuple(n.op_type for n in site.epilogue)


# ----------------------------------------------------------------------------- rebuilding


def _resized(array: np.ndarray, dense: int, width: int) -> np.ndarray:
    """A constant with the layer's output channels on some axis, cut to `width` channels there."""
    if array.size <= 1 or width == dense:
        return array
    for axis, d in enumerate(array.shape):
        if d == dense:
            index = [slice(None)] * array.ndim
            index[axis] = slice(0, width)
            return array[tuple(index)]
    return array


def _reshaped(shape: list[int], axis: int, dense: int, width: int, batch: int) -> list[int]:
    out = list(shape)
    out[0] = batch if out[0] in (0, 1) or len(out) > 1 else out[0]
    if out[axis] == dense:
        out[axis] = width
    return out


def build_subgraph(site: LayerSite, cin: int, cout: int, batch: int, opset: int, seed: int = 0) -> onnx.ModelProto:
    """The layer and its epilogue as a model of its own, at (cin, cout) channels and `batch`."""
    rng = np.random.default_rng(seed)
    node = onnx.NodeProto()
    node.CopyFrom(site.node)
    axis_in = 1 if site.channel_axis == 1 else len(site.x_shape) - 1
    x_shape = _reshaped(site.x_shape, axis_in, site.dense_cin, cin, batch)
    initializers = []
    if site.node.op_type == "Conv":
        groups = cin if site.depthwise else site.groups
        kernel = _attrs(site.node).get("kernel_shape") or []
        weight = rng.standard_normal([cout, cin // groups, *kernel]).astype(np.float32) * 0.1
        for a in node.attribute:
            if a.name == "group":
                a.i = groups
    elif site.node.op_type == "Gemm":
        weight = rng.standard_normal([cout, cin] if _attrs(site.node).get("transB", 0) else [cin, cout]).astype(np.float32) * 0.1
    else:
        weight = rng.standard_normal([cin, cout]).astype(np.float32) * 0.1
    node.input[0] = "x"
    initializers.append(numpy_helper.from_array(weight, node.input[1]))
    if len(node.input) > 2 and node.input[2]:
        initializers.append(numpy_helper.from_array(rng.standard_normal([cout]).astype(np.float32) * 0.1, node.input[2]))
    for name, array in site.constants.items():
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(_resized(array, site.dense_cout, cout)), name))
    inputs = [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)]
    for name, shape in site.externals.items():
        axis = site.channel_axis if site.channel_axis == 1 else len(shape) - 1
        inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                    _reshaped(shape, axis, site.dense_cout, cout, batch)))
    outputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None) for name in site.outputs]
    graph = helper.make_graph([node] + list(site.epilogue), f"layer_{site.name}", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = min(model.ir_version, 10)
    return model
