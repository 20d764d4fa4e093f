"""Finding the coupled groups of a traced model.

A group is every (layer, axis) that must lose the same channels when one layer's output channels
are removed. We walk torch-pruning's dependency edges ourselves instead of calling
`DependencyGraph.get_all_groups` / `get_pruning_group`, for three reasons:

- speed: torch-pruning re-maps every index in the graph on each call and merges group items with
  list scans, which is quadratic in depth (a 96-block transformer took 19.5 s); we map once and
  merge with dicts;
- termination: a walk that keeps producing new indices (torch-pruning #532, swin's reshapes) or
  indices beyond a layer's width is stopped and its group left whole with the reason;
- safety: a group that passes through a node whose index mapping failed (shufflenet's channel
  shuffle), that writes the model output (the classifier head), or that touches an ignored layer
  is left whole, and the layers it would have changed are named.

Each group is walked once with all of its root channels. Which member channels belong to which root
channel is kept (`roots`), so any subset of root channels maps to its member channels without
walking again. Root channels that must go together (through a channel-mixing cycle, grouped convs,
attention heads) are joined into units; selection removes whole units.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import torch.nn as nn
from torch_pruning import ops
from torch_pruning._helpers import GroupItem, _HybridIndex
from torch_pruning.dependency import Dependency, Group

from shrink.errors import ShrinkValueError
from shrink.prune.graph import WIDTH_TYPES, ShrinkGraph, node_label
from shrink.prune.plan import LeftWhole

# Node types that own weights or state the pass changes; other nodes (add, cat, reshape...) only
# carry channel indices between them.
STATEFUL_TYPES = WIDTH_TYPES
UNSUPPORTED_TYPES = {ops.OPTYPE.LSTM, ops.OPTYPE.CUSTOMIZED}
ROOT_TYPES = (ops.TORCH_CONV, ops.TORCH_LINEAR)
# Norms that compute statistics across the pruned dimension: removing channels changes them.
CROSS_CHANNEL_NORMS = {"LN": "LayerNorm", "GN": "GroupNorm"}
WALK_BUDGET_PER_NODE = 32  # a walk pushing more than this many items per graph node is runaway


WRITES_OUTPUT = "writes the model output (the layers that write classes, boxes or masks are always kept)"


class IncoherentGroup(Exception):
    """The walk produced indices that cannot belong to one consistent group."""


@dataclass
class Member:
    """One (layer, axis) of a group, with its channel indices and the root channel of each."""

    name: str
    axis: str  # "out": the layer writes these channels; "in": it reads them
    optype: str  # torch-pruning OPTYPE name, e.g. "CONV", "BN", "PARAMETER"
    idxs: list[int]
    roots: list[int]
    dim: int | None = None  # pruned dim, for bare parameters only
    dep: Dependency | None = field(default=None, repr=False)  # torch-pruning edge that reaches it

    def for_roots(self, chosen: set[int]) -> list[int]:
        return [i for i, r in zip(self.idxs, self.roots) if r in chosen]


@dataclass
class CoupledGroup:
    root: str  # name of the layer whose output channels define the group
    width: int  # root output channels
    members: list[Member]
    tp_group: Group  # torch-pruning's view of the same group, for importance scores
    units: list[list[int]] = field(default_factory=list)  # root channels removed together
    inexact: str | None = None  # why the zero-then-remove check cannot be exact for this group
    heads: dict[str, "HeadInfo"] = field(default_factory=dict)  # member name -> its attention heads

    @property
    def writers(self) -> list[str]:
        return [m.name for m in self.members if m.axis == "out"]


@dataclass(frozen=True)
class HeadInfo:
    """How a member's channels split into attention heads."""

    module: str  # the attention module whose num_heads changes when whole heads go
    num_heads: int
    head_dim: int
    copies: int = 1  # 3 for a fused qkv projection: q, k and v lose the same heads

    def heads_in(self, channels: int) -> int:
        return channels // (self.head_dim * self.copies)


@dataclass
class Discovery:
    groups: list[CoupledGroup]
    left_whole: list[LeftWhole]


def discover_groups(
    graph: ShrinkGraph, ignore: tuple[str, ...] = (), attention: str = "dims", claimed: set | None = None
) -> Discovery:
    """All prunable groups of `graph`, and the ones left whole with their reasons. Modules in
    `claimed` already belong to a group built elsewhere (fused qkv attention, see attention.py)."""
    check_ignore_globs(graph.model, ignore)
    found, claimed = Discovery([], []), set(claimed or ())
    for module in list(graph.module2node):
        if isinstance(module, ROOT_TYPES) and module not in claimed:
            _discover_from(graph, module, ignore, attention, claimed, found)
    return found


def _discover_from(graph, module, ignore, attention, claimed: set, found: Discovery) -> None:
    """Walk the group whose root is `module`'s output; add it to `found` as prunable or left whole.
    Every layer whose outputs the group holds is claimed, so no later group starts from it."""
    pruner = graph.get_pruner_of_module(module)
    width = pruner.get_out_channels(module) if pruner else None
    if not width:
        return
    root = graph.name_of(module)
    if graph.module2node[module] in graph.output_nodes:  # a prediction layer: not walked, never pruned
        claimed.add(module)
        found.left_whole.append(LeftWhole(root, WRITES_OUTPUT, (root,)))
        return
    try:
        items = walk(graph, module, pruner.prune_out_channels, width)
    except IncoherentGroup as exc:
        claimed.add(module)
        found.left_whole.append(LeftWhole(root, str(exc), (root,)))
        return
    members, shared_roots = members_of(graph, items)
    claimed.update(graph.by_name[m.name] for m in members if m.axis == "out")
    group, reason = None, skip_reason(graph, items, members, ignore, attention)
    if reason is None:
        group, reason = build_group(graph, root, width, members, shared_roots, attention)
    if reason is None:
        found.groups.append(group)
    else:
        writers = tuple(dict.fromkeys(m.name for m in members if m.axis == "out"))
        found.left_whole.append(LeftWhole(root, reason, writers))


def walk(graph: ShrinkGraph, module, handler, width: int) -> list[tuple[Dependency, list[_HybridIndex]]]:
    """Every dependency reached from removing all `width` output channels of `module`.

    Like torch-pruning's traversal, but each (target, handler, indices) is visited once, indices
    beyond a layer's width or a walk longer than the budget raise IncoherentGroup.
    """
    root_node = graph.module2node[module]
    start = [_HybridIndex(idx=i, root_idx=i) for i in range(width)]
    root_dep = Dependency(handler, handler, source=root_node, target=root_node)
    items = [(root_dep, start)]
    seen = {(root_node, handler, tuple(start))}
    stack = [(root_dep, start)]
    budget = WALK_BUDGET_PER_NODE * len(graph.module2node) + 1000
    widest = graph.widest
    while stack:
        dep, idxs = stack.pop()
        for next_dep in dep.target.dependencies:
            if not next_dep.is_triggered_by(dep.handler):
                continue
            mapped = _map(next_dep, idxs)
            if not mapped:
                continue
            if len(mapped) > widest:
                raise IncoherentGroup(
                    f"{len(mapped)} channel indices reached {node_label(next_dep.target)}, more than any layer "
                    f"has ({widest}): a reshape torch-pruning maps as a flatten is not one"
                )
            key = (next_dep.target, next_dep.handler, tuple(mapped))
            if key in seen:
                continue
            seen.add(key)
            _check_in_range(graph, next_dep, mapped)
            items.append((next_dep, mapped))
            stack.append((next_dep, mapped))
            if len(items) > budget:
                raise IncoherentGroup(
                    f"the coupling walk did not converge after {budget} steps (indices keep shifting "
                    "around a cycle, as in torch-pruning #532)"
                )
    return items


def _map(dep: Dependency, idxs: list[_HybridIndex]) -> list[_HybridIndex]:
    try:
        for mapping in dep.index_mapping:
            if mapping is not None:
                idxs = mapping(idxs)
    except Exception as exc:  # noqa: BLE001 - torch-pruning's mapping failed for this edge
        raise IncoherentGroup(
            f"torch-pruning could not map channels from {node_label(dep.source)} to {node_label(dep.target)} "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return idxs


def _check_in_range(graph: ShrinkGraph, dep: Dependency, idxs: list[_HybridIndex]) -> None:
    node = dep.target
    if node.type not in STATEFUL_TYPES:
        return
    is_out = graph.is_out_channel_pruning_fn(dep.handler)
    width = graph.get_out_channels(node) if is_out else graph.get_in_channels(node)
    if width is None:
        return
    if any(i.idx < 0 or i.idx >= width or i.root_idx is None for i in idxs):
        raise IncoherentGroup(
            f"channel indices mapped onto {graph.name_of(node.module)} fall outside its {width} channels "
            "(a reshape or slice torch-pruning cannot map)"
        )


def members_of(graph: ShrinkGraph, items) -> tuple[list[Member], list[tuple[int, int]]]:
    """Merge walk items per (layer, axis) into Members; nodes without state are dropped.

    Also returns pairs of root channels that reach the same member channel: they must go together.
    """
    members: dict[tuple, Member] = {}
    first_root: dict[tuple, dict[int, int]] = {}
    shared_roots = []
    for dep, idxs in items:
        node = dep.target
        if node.type not in STATEFUL_TYPES or not graph.is_named(node.module):
            continue
        axis = "out" if graph.is_out_channel_pruning_fn(dep.handler) else "in"
        key = (graph.name_of(node.module), axis)
        if key not in members:
            dim = node.pruning_dim if node.type == ops.OPTYPE.PARAMETER else None
            members[key] = Member(key[0], axis, node.type.name, [], [], dim, dep)
            first_root[key] = {}
        member, roots = members[key], first_root[key]
        for i in idxs:
            if i.idx not in roots:
                roots[i.idx] = i.root_idx
                member.idxs.append(i.idx)
                member.roots.append(i.root_idx)
            elif roots[i.idx] != i.root_idx:
                shared_roots.append((roots[i.idx], i.root_idx))
    return list(members.values()), shared_roots


def skip_reason(graph: ShrinkGraph, items, members: list[Member], ignore: tuple[str, ...], attention: str) -> str | None:
    for dep, _ in items:
        node = dep.target
        if node in graph.broken_nodes:
            broken = graph.broken_nodes[node]
            return f"passes through {broken.label}, whose channel mapping failed ({broken.error})"
        writes = node.type not in STATEFUL_TYPES or graph.is_out_channel_pruning_fn(dep.handler)
        if (node.type == ops.OPTYPE.OUTPUT or node in graph.output_nodes) and writes:
            return WRITES_OUTPUT
        if node.type in UNSUPPORTED_TYPES:
            return f"couples a {node.type.name} layer, which this pass does not prune"
    for member in members:
        glob = ignored_by(member.name, ignore) if member.axis == "out" else None
        if glob:
            return f"{member.name} is ignored (--ignore {glob})"
        if attention == "skip" and member.optype == "MHA":
            return f"couples attention {member.name} (attention='skip')"
    return None


def ignored_by(name: str, globs: tuple[str, ...]) -> str | None:
    """The glob that matches `name` or one of its parents ('layer4' also covers 'layer4.0.conv1')."""
    parts = name.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for glob in globs:
        if any(fnmatch.fnmatchcase(p, glob) for p in prefixes):
            return glob
    return None


def check_ignore_globs(model: nn.Module, globs: tuple[str, ...]) -> None:
    names = [n for n, _ in model.named_modules() if n] + [n for n, _ in model.named_parameters()]
    for glob in globs:
        if not any(ignored_by(n, (glob,)) for n in names):
            import difflib

            close = difflib.get_close_matches(glob, names, n=5, cutoff=0.5)
            hint = f"; close names: {', '.join(close)}" if close else ""
            raise ShrinkValueError(f"--ignore {glob!r} matches no module or parameter{hint}")


def build_group(graph, root_name, width, members, shared_roots, attention) -> tuple[CoupledGroup | None, str | None]:
    """The CoupledGroup with its units, or (None, reason) when its channels cannot be grouped."""
    unions = UnionFind(range(width))
    for first, other in shared_roots:
        unions.join(first, other)  # one member channel reached from two root channels
    heads = attention_heads(graph, members)
    try:
        for member in members:
            _join_channel_blocks(graph, member, unions, heads, attention)
    except IncoherentGroup as exc:
        return None, str(exc)
    group = CoupledGroup(root_name, width, members, to_tp_group(graph, members), unions.classes())
    group.heads = heads
    group.inexact = inexact_reason(members, attention)
    return group, None


def attention_heads(graph: ShrinkGraph, members: list[Member]) -> dict[str, HeadInfo]:
    heads = {}
    for member in members:
        if member.optype == "MHA":
            mha = graph.by_name[member.name]
            heads[member.name] = HeadInfo(member.name, mha.num_heads, mha.embed_dim // mha.num_heads)
    return heads


def _join_channel_blocks(graph, member: Member, unions: "UnionFind", heads: dict, attention: str) -> None:
    """Grouped convs, GroupNorm and attention split channels into equal blocks: the same position
    goes in every block (or, for whole-head pruning, a whole block goes)."""
    module = graph.by_name[member.name]
    blocks, block_size, whole_blocks = _blocks_of(module, member, heads, attention)
    if blocks <= 1:
        return
    root_of = dict(zip(member.idxs, member.roots))
    if len(root_of) != blocks * block_size:
        raise IncoherentGroup(
            f"{member.name} splits its channels into {blocks} blocks, but only {len(root_of)} of its "
            f"{blocks * block_size} channels belong to this group"
        )
    for idx, root in root_of.items():
        partner = (idx // block_size) * block_size if whole_blocks else idx % block_size
        unions.join(root, root_of[partner])


def _blocks_of(module, member: Member, heads: dict, attention: str) -> tuple[int, int, bool]:
    """(number of blocks, block size, remove whole blocks?) for one member."""
    if member.optype == "MHA":
        info = heads[member.name]
        return info.num_heads, info.head_dim, attention == "heads"
    if member.optype == "CONV" and module.groups > 1:
        width = module.out_channels if member.axis == "out" else module.in_channels
        return module.groups, width // module.groups, False
    if member.optype == "GN":
        return module.num_groups, module.num_channels // module.num_groups, False
    return 1, 0, False


def inexact_reason(members: list[Member], attention: str) -> str | None:
    for member in members:
        if member.optype in CROSS_CHANNEL_NORMS:
            return f"{CROSS_CHANNEL_NORMS[member.optype]} {member.name} normalizes across the pruned channels"
    for member in members:
        if member.optype == "MHA" and attention == "dims":
            return f"attention {member.name} loses head dims, which changes its softmax scale"
    return None


def to_tp_group(graph: ShrinkGraph, members: list[Member]) -> Group:
    """torch-pruning's Group for the members (the root first), so its importance criteria can
    score the group; nodes without weights score nothing and are left out."""
    group = Group()
    group._DG = graph
    for member in members:
        item = GroupItem(dep=member.dep, idxs=list(member.idxs))
        item.root_idxs = list(member.roots)
        group._group.append(item)
    return group


class UnionFind:
    def __init__(self, elements) -> None:
        self.parent = {e: e for e in elements}
        self.joined = False

    def find(self, e):
        while self.parent[e] != e:
            self.parent[e] = self.parent[self.parent[e]]
            e = self.parent[e]
        return e

    def join(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
            self.joined = True

    def classes(self) -> list[list[int]]:
        if not self.joined:  # the usual case: every channel is its own unit
            return [[e] for e in sorted(self.parent)]
        out: dict = {}
        for e in self.parent:
            out.setdefault(self.find(e), []).append(e)
        return [sorted(c) for c in sorted(out.values(), key=min)]
