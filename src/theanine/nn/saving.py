"""Saving a model to one .npz file (architecture as JSON, then each weight) and loading it."""

from __future__ import annotations

import json

import numpy as np

from theanine.nn.layers.base import Layer

FORMAT = "theanine.nn/1"


def save_model(model, path):
    """Write ``model``'s architecture and weights to ``path`` (NumPy .npz)."""
    arrays = {f"{i:04d}:{w.name}": w.get_value() for i, w in enumerate(model.weights)}
    config = {"format": FORMAT, "model": model.get_config()}
    with open(path, "wb") as f:
        np.savez(f, __config__=np.array(json.dumps(config)), **arrays)


def load_model(path, cls=None):
    """The model saved at ``path``: rebuilt from its architecture, with its weights."""
    if cls is None:
        from theanine.nn.model import Sequential as cls
    with np.load(path, allow_pickle=False) as data:
        config = json.loads(str(data["__config__"]))
        if config.get("format") != FORMAT:
            raise ValueError(f"{path}: not a theanine.nn model file (format {config.get('format')!r})")
        weights = [data[k] for k in sorted(k for k in data.files if k != "__config__")]
    spec = config["model"]
    layers = []
    for entry in spec["layers"]:
        layer_cls = Layer.registry.get(entry["class"])
        if layer_cls is None:
            raise ValueError(f"{path}: unknown layer class {entry['class']!r}")
        layers.append(layer_cls(**entry["config"]))
    model = cls(layers, name=spec["name"], seed=spec["seed"], dtype=spec["dtype"])
    model.build()
    model.set_weights(weights)
    return model
