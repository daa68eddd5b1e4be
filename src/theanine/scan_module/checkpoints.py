"""scan_checkpoints: a scan that stores every N-th state and recomputes the rest when
back-propagating (a loop of loops: the outer loop runs N steps of the inner one)."""

from __future__ import annotations

from theanine.scan_module.builder import _as_list, scan


def scan_checkpoints(fn, sequences=None, outputs_info=None, non_sequences=None,
                     name="checkpointscan_fn", n_steps=None, save_every_N=10, padding=True,
                     mode=None):
    """Like ``scan``, but keeps the states only every ``save_every_N`` steps; returns
    (outputs, updates) where each output has one row per block of ``save_every_N``
    steps: the value after the block's last step (so ``outputs[-1]`` is the final one).

    The gradient recomputes each block's steps from its stored first state, so memory
    grows with ``n_steps / save_every_N + save_every_N`` instead of ``n_steps``. As in
    Theano, sequences are plain tensors of equal length (no taps) and recurrent
    outputs use the single tap -1. With ``padding`` the sequences are padded with
    zeros to a whole number of blocks (the padding is never run); without it, their
    length must be a multiple of ``save_every_N``.
    """
    import theanine.tensor as T

    seqs = []
    for i, s in enumerate(_as_list(sequences)):
        if isinstance(s, dict):
            raise ValueError(f"scan_checkpoints: sequences[{i}] is a dict; taps are not supported")
        seqs.append(T.as_tensor_variable(s))
    infos = _as_list(outputs_info)
    for i, info in enumerate(infos):
        if isinstance(info, dict) and tuple(info.get("taps", [-1])) != (-1,):
            raise ValueError(f"scan_checkpoints: outputs_info[{i}] has taps {info['taps']}; only the "
                             "tap -1 is supported")
    infos = [info["initial"] if isinstance(info, dict) else info for info in infos]
    non_seqs = _as_list(non_sequences)
    every = int(save_every_N)
    if every < 1:
        raise ValueError(f"scan_checkpoints: save_every_N must be at least 1, got {save_every_N}")
    if n_steps is None:
        if not seqs:
            raise ValueError("scan_checkpoints: n_steps must be given when there are no sequences")
        n = seqs[0].shape[0]
        for s in seqs[1:]:
            n = T.minimum(n, s.shape[0])
    else:
        n = T.as_tensor_variable(n_steps)
    n = T.cast(n, "int64")
    n_blocks = (n + (every - 1)) // every
    block_steps = T.minimum(every, n - every * T.arange(n_blocks, dtype="int64"))

    blocks = []
    for s in seqs:
        s = s[:n]
        if padding:
            pad = T.zeros([n_blocks * every - n] + [s.shape[d] for d in range(1, s.ndim)], dtype=s.dtype)
            s = T.concatenate([s, pad])
        blocks.append(s.reshape([n_blocks, every] + [s.shape[d] for d in range(1, s.ndim)]))
    n_seqs, n_states = len(blocks), sum(1 for info in infos if info is not None)

    def block(*args):
        rows, steps = list(args[:n_seqs]), args[n_seqs]
        states = list(args[n_seqs + 1:n_seqs + 1 + n_states])
        inner_info = [None if info is None else states.pop(0) for info in infos]
        results, updates = scan(fn, sequences=rows, outputs_info=inner_info,
                                non_sequences=list(args[n_seqs + 1 + n_states:]), n_steps=steps,
                                name=f"{name}_inner", mode=mode, return_list=True)
        return [r[-1] for r in results], updates

    return scan(block, sequences=blocks + [block_steps], outputs_info=infos, non_sequences=non_seqs,
                n_steps=n_blocks, name=f"{name}_outer", mode=mode)
