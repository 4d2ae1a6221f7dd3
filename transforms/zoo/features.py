"""Accuracy prediction from weights (Unterthiner et al. 2020, the "weight statistics" features).

Pure functions: the 56 features (per layer, for bias and kernel: quantiles 0/25/50/75/100, std and
mean), a keyed half/half split of networks, a gradient-boosted-trees model and a linear baseline,
and the scores (R², Kendall tau, MAE).
"""
from __future__ import annotations

import hashlib

import numpy as np

QUANTILES = (0, 25, 50, 75, 100)
STATS = tuple(f"q{q}" for q in QUANTILES) + ("std", "mean")


def feature_names(table) -> list[str]:
    """`<layer>.<bias|kernel>.<stat>` in layout order: 4 layers x 2 x 7 = 56 for the zoo CNN."""
    names = []
    for varname, _, _, _ in table:
        _, layer, var = varname.split("/")
        names += [f"{layer}.{var.split(':')[0]}.{stat}" for stat in STATS]
    return names


def weight_features(weights: np.ndarray, table) -> np.ndarray:
    """(n, P) flat weights -> (n, 7 x variables) statistics, in `feature_names` order."""
    weights = np.atleast_2d(np.asarray(weights, np.float64))
    columns = []
    for _, start, end, _ in table:
        block = weights[:, start:end]
        columns.append(np.percentile(block, QUANTILES, axis=1).T)
        columns.append(block.std(axis=1)[:, None])
        columns.append(block.mean(axis=1)[:, None])
    return np.concatenate(columns, axis=1)


def in_train_half(network_index: int, salt: str = "zoo-predict") -> bool:
    """Keyed 50/50 split of networks: stable whatever the order or number of networks."""
    return hashlib.md5(f"{salt}:{network_index}".encode()).digest()[0] < 128


def kendall_tau(y_true, y_pred) -> float:
    from scipy.stats import kendalltau
    return float(kendalltau(y_true, y_pred).statistic)


def scores(y_true, y_pred) -> dict:
    from sklearn.metrics import mean_absolute_error, r2_score
    return {"r2": float(r2_score(y_true, y_pred)), "kendall_tau": kendall_tau(y_true, y_pred),
            "mae": float(mean_absolute_error(y_true, y_pred))}


def fit_and_score(x_train, y_train, x_test, y_test, *, seed: int = 0) -> dict:
    """GBM (sklearn HistGradientBoostingRegressor) and a linear baseline; scores on the test half."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    models = {
        "gbm": HistGradientBoostingRegressor(max_iter=500, learning_rate=0.05, max_leaf_nodes=31,
                                             l2_regularization=1e-3, random_state=seed),
        "linear": make_pipeline(StandardScaler(), LinearRegression()),
    }
    from threadpoolctl import threadpool_limits
    out = {}
    for name, model in models.items():
        # one OpenMP thread: the data are tiny, and spinning OpenMP teams stall on busy machines
        with threadpool_limits(limits=1):
            model.fit(x_train, y_train)
            prediction = np.clip(model.predict(x_test), 0.0, 1.0)
        out[name] = {"scores": scores(y_test, prediction), "prediction": prediction}
    return out


def plot_scatter(path_png: str, y_true, predictions: dict[str, np.ndarray], title: str) -> bytes:
    """PNG bytes: predicted vs true test accuracy, one panel per model."""
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(predictions), figsize=(5 * len(predictions), 4.6), squeeze=False)
    for ax, (name, (pred, sc)) in zip(axes[0], predictions.items()):
        ax.scatter(y_true, pred, s=4, alpha=0.5)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="true test accuracy", ylabel="predicted",
               title=f"{name}: R²={sc['r2']:.3f}  τ={sc['kendall_tau']:.3f}  MAE={sc['mae']:.3f}")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
