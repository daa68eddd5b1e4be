"""theanine.compat: `import theano` resolving to theanine, and Theano-style scripts run
unchanged through `python -m theanine.compat` / `theanine run-theano`."""

import importlib.util
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import theanine
from theanine.compat import theano as compat

SCRIPTS = Path(__file__).resolve().parent / "compat_scripts"


def run(args, cwd, env_extra=None):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")   # the machine is shared: no BLAS thread pools
    env.update(env_extra or {})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("script,expected", [
    ("logistic_sgd.py", r"test error \d+\.\d+ %"),
    ("mlp.py", r"test error \d+\.\d+ %"),
    ("lenet.py", r"test error \d+\.\d+ %"),
    ("dA.py", r"reconstruction cost \d+\.\d+ -> \d+\.\d+"),
    ("rbm.py", r"reconstruction log-likelihood -\d+\.\d+ -> -\d+\.\d+"),
    ("lstm.py", r"test error \d+\.\d+ % -> \d+\.\d+ %"),
])
def test_theano_scripts_run_unchanged(script, expected, tmp_path):
    proc = run(["-m", "theanine.compat", str(SCRIPTS / script)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    name = script[:-3]
    assert f"{name} OK" in proc.stdout
    assert re.search(expected, proc.stdout), proc.stdout


def test_run_theano_command_passes_arguments_and_flags(tmp_path):
    script = tmp_path / "show.py"
    script.write_text(
        "import sys\n"
        "import theano, theano.tensor as T\n"
        "print('argv', sys.argv[1:])\n"
        "print('name', __name__)\n"
        "print('floatX', theano.config.floatX, T.matrix().dtype)\n"
        "print('device', theano.config.device)\n")
    proc = run(["-c", "import sys; from theanine.compat.__main__ import cli; sys.exit(cli())",
                "run-theano", str(script), "--epochs", "3", "x"], cwd=tmp_path,
               env_extra={"THEANO_FLAGS": "floatX=float32,device=cuda0"})
    assert proc.returncode == 0, proc.stderr
    assert "argv ['--epochs', '3', 'x']" in proc.stdout
    assert "name __main__" in proc.stdout
    assert "floatX float32 float32" in proc.stdout
    assert "device cuda0" in proc.stdout


def test_failing_script_gives_nonzero_exit(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import theano\nassert False, 'loss did not fall'\n")
    proc = run(["-m", "theanine.compat", str(script)], cwd=tmp_path)
    assert proc.returncode == 1
    assert "loss did not fall" in proc.stderr
    missing = run(["-m", "theanine.compat", str(tmp_path / "nope.py")], cwd=tmp_path)
    assert missing.returncode == 2 and "no such script" in missing.stderr


@pytest.fixture
def theano():
    compat.install()
    import theano as module
    yield module
    compat.uninstall()


def test_theano_names_resolve_to_theanine(theano):
    import theano.tensor as T
    from theano.ifelse import ifelse
    from theano.sandbox.rng_mrg import MRG_RandomStreams
    from theano.tensor.nnet import conv2d
    from theano.tensor.shared_randomstreams import RandomStreams
    from theano.tensor.signal import pool
    import theano.gradient
    import theano.printing

    assert T.dot is theanine.tensor.dot and T.nnet.sigmoid is theanine.tensor.nnet.sigmoid
    assert theano.function is theanine.function and theano.shared is theanine.shared
    assert theano.scan is theanine.scan and ifelse is theanine.ifelse.ifelse
    assert conv2d is theanine.tensor.nnet.conv2d
    assert RandomStreams is theanine.tensor.random.RandomStreams
    assert issubclass(MRG_RandomStreams, theanine.tensor.random.RandomStreams)
    assert theano.gradient.grad is theanine.grad and theano.printing.debugprint is theanine.printing.debugprint
    assert pool.pool_2d is not theanine.tensor.signal.pool.pool_2d          # Theano's signature
    assert theanine.tensor.signal.pool.pool_2d.__module__ == "theanine.tensor.signal.pool"
    assert theano.config.floatX == theanine.config.floatX
    assert theano.tensor.signal.pool is pool                                # attribute access too
    assert theano.tensor.nnet.bn.batch_normalization_train is theanine.tensor.nnet.bn.batch_normalization_train
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        theano.tensor.no_such_name


def test_theano_signatures(theano):
    import theano.tensor as T
    from theano.sandbox.rng_mrg import MRG_RandomStreams
    from theano.tensor.nnet import conv
    from theano.tensor.signal import downsample, pool

    x = T.dtensor4("x")
    data = np.arange(2 * 1 * 5 * 5, dtype=float).reshape(2, 1, 5, 5)
    default = theano.function([x], pool.pool_2d(x, ds=(2, 2)))(data)       # ignore_border=False
    assert default.shape == (2, 1, 3, 3)
    assert theano.function([x], downsample.max_pool_2d(x, (2, 2), ignore_border=True))(data).shape == (2, 1, 2, 2)
    w = np.ones((3, 1, 2, 2))
    out = theano.function([x], conv.conv2d(x, w, filter_shape=(3, 1, 2, 2), image_shape=(2, 1, 5, 5)))(data)
    assert out.shape == (2, 3, 4, 4) and out[0, 0, 0, 0] == 0 + 1 + 5 + 6
    srng = MRG_RandomStreams(seed=7)
    draw = srng.binomial(size=(1000,), p=0.25, nstreams=16, dtype="float64")
    assert abs(theano.function([], draw)().mean() - 0.25) < 0.05
    assert srng.uniform((3,), nstreams=4).ndim == 1


def test_config_accepts_theano_settings(theano):
    old = theano.config.floatX
    try:
        theano.config.optimizer = "None"
        assert theano.config.optimizer == "None"
        theano.config.floatX = "float32"
        assert theanine.config.floatX == "float32"
    finally:
        theanine.config.floatX = old
    with pytest.raises(AttributeError, match="no setting"):
        theano.config.no_such_flag


def test_unknown_and_gpu_modules_are_refused(theano):
    with pytest.raises(ImportError, match="theano.sandbox.cuda: theanine runs Theano scripts on the CPU"):
        import theano.sandbox.cuda  # noqa: F401
    with pytest.raises(ModuleNotFoundError, match="no counterpart"):
        import theano.no_such_module  # noqa: F401


def test_refuses_when_real_theano_is_imported(monkeypatch):
    fake = types.ModuleType("theano")
    fake.__file__ = "/somewhere/theano/__init__.py"
    monkeypatch.setitem(sys.modules, "theano", fake)
    with pytest.raises(RuntimeError, match="a real Theano is already imported"):
        compat.install()
    assert not compat.installed()


def test_uninstall_forgets_theano():
    compat.install()
    import theano  # noqa: F401
    compat.uninstall()
    assert "theano" not in sys.modules and not compat.installed()
    if importlib.util.find_spec("theano") is None:   # no real Theano installed
        with pytest.raises(ImportError):
            import theano  # noqa: F401,F811
