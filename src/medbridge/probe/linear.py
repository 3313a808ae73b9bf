"""RQ1 / Table 1: a linear probe on cached vision-tower features (medbridge.probe.features).

Head `sgd` (the authors' recipe): BatchNorm1d(affine=False, eps=1e-6) + Linear, cross-entropy, SGD (lr 0.1, momentum
0.9, weight decay 0), cosine schedule stepped per epoch over `probe.epochs` (20), batches of `probe.probe_batch_size`
(1024), all seeded from the config `seed`. As the authors (linprobe.py), by default: BatchNorm's running statistics
are an exponential average with momentum 0.1 (`probe.bn_momentum`, PyTorch's default), and the head kept is the
last epoch's (`probe.select: last`), whose accuracy on the test subset is reported (their evaluation folder is the
balanced test subset, printed every epoch: `test_curve` here). Alternatives: `bn_momentum: null` keeps a cumulative
average (a small training set gives only a few steps, over which an exponential average stays biased towards its
initial values: the tiny profile), `select: best_val` keeps the epoch with the best accuracy on MedMNIST's val split
(earliest on ties), scored once on the test subset. Training batches of a single example (a remainder) are dropped:
BatchNorm cannot normalise them.

With augmented features (probe.augment `authors`), the train features hold one set per epoch, (epochs, N, D):
epoch e trains on set e, as the authors' probe sees freshly cropped and flipped images every epoch.

Head `logreg` (a cross-check): scikit-learn's StandardScaler + LogisticRegression, its inverse regularisation C
chosen on val from `probe.logreg_c`.
"""

from __future__ import annotations

import numpy as np

from medbridge import MedbridgeError

HEADS = ("sgd", "logreg")
SELECT = ("last", "best_val")


def probe_settings(cfg: dict) -> dict:
    p = cfg["probe"]
    out = {"head": p["head"], "seed": cfg["seed"]}
    if out["head"] == "sgd":
        out |= {
            "epochs": p["epochs"],
            "lr": p["lr"],
            "momentum": p["momentum"],
            "weight_decay": p["weight_decay"],
            "batch_size": p["probe_batch_size"],
            "bn_momentum": p["bn_momentum"],
            "select": p["select"],
        }
        if out["select"] not in SELECT:
            raise MedbridgeError(
                f"probe.select {out['select']!r} is unknown; choose one of {list(SELECT)} (last: the "
                "authors' last epoch; best_val: the epoch best on MedMNIST's val split)"
            )
    elif out["head"] == "logreg":
        out["logreg_c"] = list(p["logreg_c"])
    else:
        raise MedbridgeError(f"probe.head {out['head']!r} is unknown; choose one of {list(HEADS)}")
    return out


def probe_head(dim: int, n_classes: int, bn_momentum: float | None = 0.1):
    """BatchNorm1d(affine=False, eps 1e-6) + Linear: the authors' head; `bn_momentum` None = a cumulative average."""
    from torch import nn

    return nn.Sequential(nn.BatchNorm1d(dim, affine=False, eps=1e-6, momentum=bn_momentum), nn.Linear(dim, n_classes))


def fit_sgd(
    xtr,
    ytr,
    xva,
    yva,
    n_classes: int,
    epochs: int,
    lr: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    bn_momentum: float | None = 0.1,
    select: str = "last",
    xte=None,
    yte=None,
) -> dict:
    """Train the BN + Linear head; return the kept head (`select`: the last epoch's, or the best-val epoch's), the val
    curve and, given the test set, the test curve (the authors' per-epoch printout). `xtr` is (N, D), or
    (epochs, N, D) with one augmented set per epoch. `bn_momentum` None: a cumulative average."""
    import copy

    import torch
    from torch import nn

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    xtr, ytr = torch.as_tensor(xtr, dtype=torch.float32), torch.as_tensor(ytr, dtype=torch.long)
    per_epoch = xtr if xtr.ndim == 3 else None
    if per_epoch is not None and len(per_epoch) != epochs:
        raise MedbridgeError(
            f"the features hold {len(per_epoch)} augmented epochs but probe.epochs is {epochs}; "
            "remake the features with the same probe.epochs"
        )
    xva, yva = torch.as_tensor(xva, dtype=torch.float32), torch.as_tensor(yva, dtype=torch.long)
    dim = xtr.shape[-1]
    head = probe_head(dim, n_classes, bn_momentum)
    opt = torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    best, curve, test_curve = None, [], []
    if xte is not None:
        xte, yte = torch.as_tensor(xte, dtype=torch.float32), torch.as_tensor(yte, dtype=torch.long)
    for epoch in range(epochs):
        head.train()
        x = per_epoch[epoch] if per_epoch is not None else xtr
        for batch in torch.randperm(len(ytr), generator=gen).split(batch_size):
            if len(batch) < 2:
                continue
            loss = nn.functional.cross_entropy(head(x[batch]), ytr[batch])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        head.eval()
        with torch.no_grad():
            acc = (head(xva).argmax(1) == yva).float().mean().item()
            if xte is not None:
                test_curve.append((head(xte).argmax(1) == yte).float().mean().item())
        curve.append(acc)
        if select == "last" or best is None or acc > best["val_accuracy"]:
            best = {"epoch": epoch + 1, "val_accuracy": acc, "state": copy.deepcopy(head.state_dict())}
    head.load_state_dict(best["state"])
    head.eval()

    def predict(x):
        with torch.no_grad():
            return head(torch.as_tensor(x, dtype=torch.float32)).argmax(1).numpy()

    return {
        "predict": predict,
        "epoch": best["epoch"],
        "val_accuracy": best["val_accuracy"],
        "val_curve": curve,
        "test_curve": test_curve or None,
    }


def fit_logreg(xtr, ytr, xva, yva, cs: list[float], seed: int) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    best = None
    for c in cs:
        clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
        clf.fit(xtr, ytr)
        acc = float((clf.predict(xva) == yva).mean())
        if best is None or acc > best["val_accuracy"]:
            best = {"predict": clf.predict, "C": c, "val_accuracy": acc}
    return best


def run_probe(arrays: dict, meta: dict, cfg: dict, n_classes: int) -> dict:
    """Fit the configured head on train, select on val, score the test subset; the probe JSON's content."""
    settings = probe_settings(cfg)
    xtr, ytr = arrays["train_features"], arrays["train_labels"]
    xva, yva = arrays["val_features"], arrays["val_labels"]
    xte, yte = arrays["test_features"], arrays["test_labels"]
    for split, y in (("train", ytr), ("val", yva), ("test", yte)):
        if not len(y):
            raise MedbridgeError(f"{meta.get('dataset')}: the {split} split has no images; remake the features")
        if y.min() < 0 or y.max() >= n_classes:
            raise MedbridgeError(
                f"{meta.get('dataset')}: {split} labels outside 0..{n_classes - 1}; the features file is not from "
                "this dataset: remake it"
            )
    if settings["head"] == "sgd":
        fit = fit_sgd(
            xtr,
            ytr,
            xva,
            yva,
            n_classes,
            settings["epochs"],
            settings["lr"],
            settings["momentum"],
            settings["weight_decay"],
            settings["batch_size"],
            settings["seed"],
            settings["bn_momentum"],
            settings["select"],
            xte,
            yte,
        )
    else:  # augmented epochs: logistic regression sees every augmented view once
        fit = fit_logreg(
            xtr.reshape(-1, xtr.shape[-1]),
            np.tile(ytr, len(xtr)) if xtr.ndim == 3 else ytr,
            xva,
            yva,
            settings["logreg_c"],
            settings["seed"],
        )
    correct = fit["predict"](xte) == yte
    return {
        "model": meta.get("model"),
        "dataset": meta.get("dataset"),
        "features": meta.get("features"),
        "feature_dim": int(xtr.shape[-1]),
        "n_classes": n_classes,
        "head": settings["head"],
        "accuracy": float(correct.mean()),
        "n": int(len(yte)),
        "n_correct": int(correct.sum()),
        "n_train": int(len(ytr)),
        "augmented_epochs": int(len(xtr)) if xtr.ndim == 3 else 0,
        "n_val": int(len(yva)),
        "val_accuracy": fit["val_accuracy"],
        "epoch": fit.get("epoch"),
        "C": fit.get("C"),
        "val_curve": fit.get("val_curve"),
        "test_curve": fit.get("test_curve"),
        "settings": settings,
        "feature_settings": meta.get("settings"),
    }
