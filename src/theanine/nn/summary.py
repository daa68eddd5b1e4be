"""The text table of ``Sequential.summary()``."""

from __future__ import annotations


def _shape(shape):
    return "(None, " + ", ".join("None" if s is None else str(s) for s in shape) + ")"


def summary_text(model):
    """Layers, output shapes (None: the batch) and parameter counts, with totals."""
    rows = [("Layer (type)", "Output Shape", "Param #")]
    shape = model.input_shape
    for layer in model.layers:
        if shape is not None:
            shape = layer.compute_output_shape(tuple(shape))
        rows.append((f"{layer.name} ({type(layer).__name__})",
                     "?" if shape is None else _shape(shape),
                     f"{layer.count_params():,}" if layer.built else "?"))
    widths = [max(len(r[i]) for r in rows) + 2 for i in range(3)]
    line = "-" * sum(widths)
    lines = [f'Model: "{model.name}"', line]
    for k, row in enumerate(rows):
        lines.append("".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        lines.append("=" * sum(widths) if k == 0 else line)
    trainable = sum(int(p.get_value(borrow=True).size) for p in model.params) if model.built else 0
    total = model.count_params() if model.built else 0
    lines += [f"Total params: {total:,}", f"Trainable params: {trainable:,}",
              f"Non-trainable params: {total - trainable:,}"]
    return "\n".join(lines)
