"""Loading fairseq checkpoints under torch >= 2.6, whose ``torch.load`` defaults to
``weights_only=True``.

fairseq stores its training configuration in checkpoints (``argparse.Namespace`` and
omegaconf containers) and, for HuBERT-style tasks, the label dictionaries in ``task_state``
(``fairseq.data.Dictionary``, plain data), which the weights-only unpickler refuses. Instead of turning the safe
loader off, we allow-list exactly those configuration types, once, when the plugin is imported;
``fairseq-train --restore-file``, ``fairseq-generate`` and our agents then load checkpoints with
fairseq's own loader.
"""
from __future__ import annotations

import argparse
import collections
import typing

import torch


def _safe_globals():
    import omegaconf
    from fairseq.data.dictionary import Dictionary
    from omegaconf import base, dictconfig, listconfig, nodes

    types = [
        argparse.Namespace,
        Dictionary,
        collections.defaultdict,
        typing.Any,
        dict,
        list,
        int,
        float,
        str,
        bool,
        omegaconf.DictConfig,
        omegaconf.ListConfig,
        dictconfig.DictConfig,
        listconfig.ListConfig,
        base.ContainerMetadata,
        base.Metadata,
        nodes.AnyNode,
        nodes.StringNode,
        nodes.IntegerNode,
        nodes.FloatNode,
        nodes.BooleanNode,
        nodes.EnumNode,
        nodes.ValueNode,
    ]
    return types


def allow_fairseq_checkpoints() -> None:
    torch.serialization.add_safe_globals(_safe_globals())
