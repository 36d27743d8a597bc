"""Name rules: a peer's tensor names (torchvision, timm) rewritten to cnnlab's, per family.

Each family that a peer names by meaning (``layer1.0.bn2``, ``blocks.1.0.conv_pwl``,
``Mixed_7b.branch3x3_2a``) has one list of rules per peer naming scheme, written once for
all its models: every rule rewrites the names it matches, in order. A rule is
``(regex, replacement)`` (``re.sub``; the replacement may be a function of the match, or
``None`` to drop the tensor, e.g. an auxiliary head) or :func:`renumber`, which numbers
nested indices consecutively (timm's ``blocks.3.2`` is the 9th block, cnnlab's ``block9``).

:func:`cnnlab.pretrained.load_weights` tries the rules of the model's family; a scheme
applies when most of its rewritten names are the model's, and then every name must be
(the first that is not is named in the error). Families without rules here (torchvision's
index-named ``features.N`` networks: AlexNet, VGG, SqueezeNet, MobileNet v2, ShuffleNet V2,
DenseNet, EfficientNet; Keras files) are paired by the order rule of
:mod:`cnnlab.pretrained`, where the index in each name gives the order back.
"""

from __future__ import annotations

import re


def renumber(pattern: str, fmt: str, scoped: int = 0):
    """A rule numbering the indices captured by ``pattern`` consecutively from 1 in numeric
    order: ``renumber(r"^blocks\\.(\\d+)\\.(\\d+)\\.", "features.block{}.")`` makes timm's
    ``blocks.3.2`` cnnlab's ``block9``. The first ``scoped`` groups name a scope, kept as they
    are (and passed to ``fmt`` first), within which the numbering restarts."""
    rx = re.compile(pattern)

    def rule(keys: list[str]) -> dict[str, str]:
        hits = {k: m for k in keys if (m := rx.match(k))}
        seen: dict[tuple, set] = {}
        for m in hits.values():
            seen.setdefault(m.groups()[:scoped], set()).add(
                tuple(int(g) for g in m.groups()[scoped:]))
        number = {(scope, idx): i + 1 for scope, idxs in seen.items()
                  for i, idx in enumerate(sorted(idxs))}
        return {k: fmt.format(*m.groups()[:scoped], number[(
            m.groups()[:scoped], tuple(int(g) for g in m.groups()[scoped:]))]) + k[m.end():]
            for k, m in hits.items()}

    return rule


def _plus(offset: int, fmt: str):
    return lambda m: fmt.format(int(m.group(1)) + offset)


_RESNET = [  # torchvision's ResNet/ResNeXt, also timm's resnet* and resnext*
    (r"^conv1\.", "conv1.conv."), (r"^bn1\.", "conv1.bn."),
    (r"^layer(\d)\.", _plus(1, "conv{}_x.")),
    (r"\.conv(\d)\.", r".conv\1.conv."), (r"\.bn(\d)\.", r".conv\1.bn."),
    (r"\.downsample\.0\.", ".shortcut.conv."), (r"\.downsample\.1\.", ".shortcut.bn."),
    (r"^fc\.", "head.fc."),
]
_INCEPTION_V3 = [  # torchvision's inception_v3 and timm's (the same names)
    (r"^AuxLogits\.", None),
    (r"^Conv2d_(\d\w)_\d+x\d+\.", r"features.conv\1."),
    (r"^Mixed_(\w+)\.", lambda m: f"features.mixed{m.group(1).lower()}."),
    (r"\.(branch[0-9a-z]+?)_(\d+)a\.", r".\1.split.1x3."),
    (r"\.(branch[0-9a-z]+?)_(\d+)b\.", r".\1.split.3x1."),
    (r"\.(branch[0-9a-z]+?)_(\d+)\.", lambda m: f".{m.group(1)}.conv{int(m.group(2)) - 1}."),
    (r"\.branch_pool\.", ".branch_pool.conv1."),
    (r"^fc\.", "head.fc."),
]
_TIMM_EFFICIENTNET = [  # timm's efficientnet_b* and tf_efficientnet_b*
    (r"^conv_stem\.", "stem.conv."), (r"^bn1\.", "stem.bn."),
    (r"^conv_head\.", "conv_head.conv."), (r"^bn2\.", "conv_head.bn."),
    (r"^classifier\.", "head.fc."),
    # stage 0 is depthwise-separable (expansion 1): dw, bn1, se, pw, bn2
    (r"^blocks\.0\.(\d+)\.conv_dw\.", r"stages.0.\1.dw.conv."),
    (r"^blocks\.0\.(\d+)\.bn1\.", r"stages.0.\1.dw.bn."),
    (r"^blocks\.0\.(\d+)\.conv_pw\.", r"stages.0.\1.project.conv."),
    (r"^blocks\.0\.(\d+)\.bn2\.", r"stages.0.\1.project.bn."),
    (r"^blocks\.", "stages."),
    (r"\.conv_pw\.", ".expand.conv."), (r"\.bn1\.", ".expand.bn."),
    (r"\.conv_dw\.", ".dw.conv."), (r"\.bn2\.", ".dw.bn."),
    (r"\.conv_pwl\.", ".project.conv."), (r"\.bn3\.", ".project.bn."),
]
_TIMM_MOBILENET_V1 = [
    (r"^conv_stem\.", "features.stem.conv."), (r"^bn1\.", "features.stem.bn."),
    renumber(r"^blocks\.(\d+)\.(\d+)\.", "features.block{}."),
    (r"\.conv_dw\.", ".dw.conv."), (r"\.bn1\.", ".dw.bn."),
    (r"\.conv_pw\.", ".pw.conv."), (r"\.bn2\.", ".pw.bn."),
    (r"^classifier\.", "head.fc."),
]
_XCEPTION_FLOW = {range(1, 4): ("entry", 0), range(4, 12): ("middle", 3),
                  range(12, 13): ("exit", 11)}


def _xception_block(m):
    n = int(m.group(1))
    flow, offset = next(v for r, v in _XCEPTION_FLOW.items() if n in r)
    return f"features.{flow}{n - offset}."


_TIMM_XCEPTION = [  # timm's legacy_xception (Cadene's port of the Keras model)
    (r"^conv([34])\.conv1\.", _plus(-2, "features.exit_sep{}.sep.dw.")),
    (r"^conv([34])\.pointwise\.", _plus(-2, "features.exit_sep{}.sep.pw.")),
    (r"^bn([34])\.", _plus(-2, "features.exit_sep{}.bn.")),
    (r"^conv([12])\.", r"features.conv\1.conv."), (r"^bn([12])\.", r"features.conv\1.bn."),
    # a block's rep is [ReLU,] SeparableConv, BN, ...: its k-th of each is sep{k} / bn{k}
    renumber(r"^(block\d+)\.rep\.(\d+)\.(?=conv1|pointwise)", "{}.body.sep{}.", scoped=1),
    renumber(r"^(block\d+)\.rep\.(\d+)\.(?=weight|bias|running)", "{}.body.bn{}.", scoped=1),
    (r"(\.sep\d)\.conv1\.", r"\1.dw."), (r"(\.sep\d)\.pointwise\.", r"\1.pw."),
    (r"\.skip\.", ".shortcut.conv."), (r"\.skipbn\.", ".shortcut.bn."),
    (r"^block(\d+)\.", _xception_block),
    (r"^fc\.", "head.fc."),
]
_PREACT_UNIT = {"norm1": "preact.0", "conv1": "body.conv1", "norm2": "body.conv2.bn",
                "conv2": "body.conv2.conv", "norm3": "body.conv3.bn", "conv3": "body.conv3.conv"}
_TIMM_RESNETV2 = [  # timm's resnetv2_* (pre-activation; the stem has no norm)
    (r"^stem\.conv\.", "conv1.conv."),
    # the first unit's pre-activation is cnnlab's stem BN (before the max pool: the same
    # function while the BN scales are positive, as max pooling commutes with them)
    (r"^stages\.0\.blocks\.0\.norm1\.", "conv1.bn."),
    (r"^stages\.(\d)\.blocks\.", _plus(2, "conv{}_x.")),
    (r"\.(norm|conv)([123])\.", lambda m: "." + _PREACT_UNIT[m.group(1) + m.group(2)] + "."),
    (r"\.downsample\.conv\.", ".shortcut."),
    (r"^norm\.", "final_act.bn."),
]

# timm's inception_resnet_v2 (Cadene's port of TF-slim): its numbered branches by block type
_IRV2_BRANCHES = {
    "mixed_5b": ("branch1x1", "branch5x5", "branch3x3dbl", "branch_pool"),
    "mixed_6a": ("branch3x3", "branch3x3dbl"),
    "mixed_7a": ("branch3x3a", "branch3x3b", "branch3x3dbl"),
    "repeat": ("branch1x1", "branch3x3", "branch3x3dbl"),
    "repeat_1": ("branch1x1", "branch7x7"),
    "repeat_2": ("branch1x1", "branch3x3"),
}
_IRV2_BLOCK = {"repeat": "block35", "repeat_1": "block17", "repeat_2": "block8"}


def _irv2_part(m):
    kind, idx, branch, n = m.group(1), m.group(2), m.group(3), m.group(4)
    if kind == "block8":  # the last Inception-ResNet-C unit (no ReLU) follows repeat_2's 9
        kind, idx = "repeat_2", "9"
    if kind in _IRV2_BLOCK:
        where = f"features.{_IRV2_BLOCK[kind]}.{idx}"
        if branch is None:
            return f"{where}.up."
        where += ".branches"
    else:
        where = "features." + kind.replace("_", "")
    return f"{where}.{_IRV2_BRANCHES[kind][int(branch)]}." + (f"conv{n}." if n else "")


_TIMM_INCEPTION_RESNET_V2 = [
    (r"^conv2d_(\d\w)\.", r"features.conv\1."),
    (r"^(mixed_\w+|repeat(?:_\d)?|block8)\.(?:(\d+)\.)?(?:branch(\d)\.(?:(\d+)\.)?|conv2d\.)",
     _irv2_part),
    (r"^classif\.", "head.fc."),
]

_TIMM_NASNET = [  # timm's nasnetalarge (Cadene's port of TF-slim)
    (r"^(cell_stem_\d|cell_\d+|reduction_cell_\d)\.", r"cells.\1."),
    (r"\.comb_iter_(\d)_(left|right)\.", r".comb_iter_\1.\2."),
    (r"\.depthwise_conv2d\.", ".dw."), (r"\.pointwise_conv2d\.", ".pw."),
    (r"\.path_(\d)\.conv\.", r".prev.path\1."), (r"\.final_path_bn\.", ".prev.bn."),
    (r"\.conv_prev_1x1\.", ".prev."),
    (r"^last_linear\.", "head.fc."),
]

# family (the cnnlab.models module) -> {scheme ("|"-separated peers that use it): rules}
NAME_RULES: dict[str, dict[str, list]] = {
    "resnet": {"torchvision|timm": _RESNET, "timm": _TIMM_RESNETV2},
    "xception": {"timm": _TIMM_XCEPTION},
    "inception_resnet": {"timm": _TIMM_INCEPTION_RESNET_V2},
    "nasnet": {"timm": _TIMM_NASNET},
    "resnext": {"torchvision|timm": _RESNET},
    "inception": {"torchvision|timm": _INCEPTION_V3},
    "efficientnet": {"timm": _TIMM_EFFICIENTNET},
    "mobilenet": {"timm": _TIMM_MOBILENET_V1},
}


def rename(keys: list[str], rules: list) -> dict[str, str | None]:
    """``{peer name: cnnlab name}`` (``None``: dropped) after applying ``rules`` in order."""
    names: dict[str, str | None] = {k: k for k in keys}
    for rule in rules:
        if callable(rule):
            live = [v for v in names.values() if v is not None]
            new = rule(live)
            names = {k: (new.get(v, v) if v is not None else None) for k, v in names.items()}
            continue
        rx, repl = rule
        rx = re.compile(rx)
        for k, v in names.items():
            if v is not None and rx.search(v):
                names[k] = None if repl is None else rx.sub(repl, v)
    return names


def schemes(family: str, source: str = "auto") -> dict[str, list]:
    """The naming schemes with rules for ``family`` (all of them for ``source="auto"``)."""
    known = NAME_RULES.get(family, {})
    return {k: v for k, v in known.items() if source == "auto" or source in k.split("|")}
