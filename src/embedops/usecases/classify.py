"""Classify: a logistic-regression head on frozen embeddings of one model version.

    clf = train(eo, "tickets", label_field="intent", name="router")
    predict_texts(eo, "router", ["my card was charged twice"], k=3, threshold=0.5)

Training reads the collection's stored vectors of its active version (no re-embedding) and
labels from item metadata (or an ``{id: label}`` mapping), holds out a stratified split, and
records accuracy, macro-F1 and the confusion matrix of that split in the manifest. The
probabilities are temperature-scaled on the held-out split (calibration). The artefact stores
``coef``/``intercept`` and the class names (safetensors + JSON), never a pickle; the predictor is
rebuilt from them. A classifier refuses vectors of any model version but its own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from embedops.errors import InvalidInput, VersionMismatch
from embedops.usecases import artefacts

if TYPE_CHECKING:
    from embedops.engine.facade import Embedops

KIND = "classifiers"
MIN_PER_LABEL = 2


@dataclass(frozen=True)
class Prediction:
    """Top-k ``(label, probability)`` pairs, best first; ``label`` is None when the best
    probability is below the threshold (abstained)."""

    top: list[tuple[str, float]]
    label: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"label": self.label, "abstained": self.label is None,
                "top": [{"label": lab, "probability": p} for lab, p in self.top]}


@dataclass(frozen=True)
class Classifier:
    """A trained head: ``manifest`` (ref, model_version, labels, metrics...) and its weights."""

    manifest: dict[str, Any]
    coef: np.ndarray
    intercept: np.ndarray
    temperature: float

    @property
    def labels(self) -> list[str]:
        """Class names, in column order of the probabilities."""
        return list(self.manifest["labels"])

    @property
    def model_version(self) -> str:
        """The embedding model version this classifier was trained on."""
        return str(self.manifest["model_version"])

    def proba(self, vectors: np.ndarray, version: str) -> np.ndarray:
        """Calibrated ``(n, labels)`` probabilities of ``version`` vectors."""
        if version != self.model_version:
            raise VersionMismatch(
                f"classifier {self.manifest['ref']} was trained on {self.model_version} "
                f"vectors; these are {version} vectors",
                "train a classifier on this version, or embed with "
                f"{self.model_version}")
        x = np.asarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.coef.shape[1]:
            raise InvalidInput(f"expected (n, {self.coef.shape[1]}) vectors, got {x.shape}")
        return _softmax((x @ self.coef.T + self.intercept) / self.temperature)

    def predict(self, vectors: np.ndarray, version: str, k: int = 1,
                threshold: float = 0.0) -> list[Prediction]:
        """Top-``k`` labels per row; abstain (label None) below ``threshold``."""
        k = _check_k(k, len(self.labels))
        if not 0.0 <= threshold <= 1.0:
            raise InvalidInput(f"threshold must be in [0, 1], got {threshold}")
        probs = self.proba(vectors, version)
        out = []
        for row in probs:
            order = np.argsort(-row, kind="stable")[:k]
            top = [(self.labels[j], float(row[j])) for j in order]
            out.append(Prediction(top, top[0][0] if top[0][1] >= threshold else None))
        return out


def train(eo: Embedops, collection: str, label_field: str = "label", name: str | None = None,
          labels: Mapping[str, str] | None = None, test_size: float = 0.2, c: float = 10.0,
          seed: int = 0) -> Classifier:
    """Train and publish a classifier on ``collection``'s active-version vectors; labels from
    ``labels`` (id → label) when given, else from the ``label_field`` metadata."""
    version = eo.collection_info(collection).model_version
    ids, y = _labelled(eo, collection, label_field, labels)
    found, x = eo.load_vectors(collection, version, ids)
    by_id = dict(zip(ids, y, strict=True))
    y = [by_id[i] for i in found]
    fit = fit_head(x, y, test_size=test_size, c=c, seed=seed)
    manifest = {"model_version": version, "collection": collection, "dim": int(x.shape[1]),
                "label_field": None if labels is not None else label_field,
                "labels": fit["labels"], "params": {"c": c, "test_size": test_size,
                                                    "seed": seed}, **fit["manifest"]}
    arrays = {"coef": fit["coef"], "intercept": fit["intercept"],
              "temperature": np.array([fit["temperature"]], dtype=np.float32)}
    _, stored = artefacts.publish(eo.workspace, KIND, name or collection, arrays, manifest)
    return Classifier(stored, fit["coef"], fit["intercept"], fit["temperature"])


def fit_head(x: np.ndarray, y: Sequence[str], test_size: float = 0.2, c: float = 10.0,
             seed: int = 0) -> dict[str, Any]:
    """Fit logistic regression on a stratified split, calibrate a temperature and measure the
    held-out split: the arrays and metrics ``train`` publishes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    counts = Counter(y)
    if len(counts) < 2:
        raise InvalidInput(f"a classifier needs at least 2 labels, got {sorted(counts)}")
    rare = sorted(lab for lab, n in counts.items() if n < MIN_PER_LABEL)
    if rare:
        raise InvalidInput(f"labels with fewer than {MIN_PER_LABEL} examples: {rare[:10]}",
                           "label more items, or merge or drop those labels")
    if not 0.0 < test_size < 1.0:
        raise InvalidInput(f"test_size must be in (0, 1), got {test_size}")
    n_test = max(len(counts), int(round(test_size * len(y))))
    if n_test >= len(y) - len(counts) + 1:
        raise InvalidInput(f"{len(y)} labelled items are too few for a held-out split over "
                           f"{len(counts)} labels", "label more items")
    xtr, xte, ytr, yte = train_test_split(x, list(y), test_size=n_test, random_state=seed,
                                          stratify=list(y))
    model = LogisticRegression(C=c, max_iter=2000).fit(xtr, ytr)
    labels = [str(v) for v in model.classes_]
    coef = model.coef_.astype(np.float32)
    intercept = model.intercept_.astype(np.float32)
    if coef.shape[0] == 1:  # binary: sklearn keeps one row; make it a two-column softmax
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2], dtype=np.float32)
    logits = xte @ coef.T + intercept
    truth = np.array([labels.index(v) for v in yte])
    temperature = _temperature(logits, truth)
    return {"labels": labels, "coef": coef, "intercept": intercept,
            "temperature": temperature,
            "manifest": {"train_count": len(ytr), "test_count": len(yte),
                         "temperature": temperature,
                         "metrics": metrics(truth, logits.argmax(1), labels)}}


def metrics(truth: np.ndarray, pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and the confusion matrix (rows: truth, columns: predicted)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    idx = list(range(len(labels)))
    return {"accuracy": float(accuracy_score(truth, pred)),
            "macro_f1": float(f1_score(truth, pred, labels=idx, average="macro",
                                       zero_division=0)),
            "confusion": confusion_matrix(truth, pred, labels=idx).tolist()}


def load(eo: Embedops, ref: str) -> Classifier:
    """The classifier ``name`` or ``name@N`` (default the newest version)."""
    name, version = artefacts.parse_ref(ref)
    manifest, arrays = artefacts.load(eo.workspace, KIND, name, version)
    return Classifier(manifest, arrays["coef"], arrays["intercept"],
                      float(arrays["temperature"][0]))


def predict_texts(eo: Embedops, ref: str, texts: Sequence[str], k: int = 1,
                  threshold: float = 0.0) -> list[Prediction]:
    """Embed ``texts`` with the classifier's own model version and predict."""
    if isinstance(texts, str) or not texts:
        raise InvalidInput("texts must be a non-empty list of strings")
    clf = load(eo, ref)
    return clf.predict(eo.embed(list(texts), clf.model_version), clf.model_version, k,
                       threshold)


def predict_items(eo: Embedops, ref: str, collection: str, ids: Sequence[str], k: int = 1,
                  threshold: float = 0.0) -> dict[str, Prediction]:
    """Predict stored items from their vectors of the collection's active version (refused
    when that is not the classifier's version)."""
    clf = load(eo, ref)
    version = eo.collection_info(collection).model_version
    found, x = eo.load_vectors(collection, version, list(ids))
    missing = sorted(set(ids) - set(found))
    if missing:
        raise InvalidInput(f"no items {missing[:5]} in collection '{collection}'")
    return dict(zip(found, clf.predict(x, version, k, threshold), strict=True))


def evaluate(eo: Embedops, ref: str, texts: Sequence[str], gold: Sequence[str],
             threshold: float = 0.0) -> dict[str, Any]:
    """Accuracy/macro-F1 on labelled texts, plus the abstain rate and the false-routing rate
    (answered but wrong) at ``threshold``; labels the classifier never saw are refused."""
    clf = load(eo, ref)
    unknown = sorted(set(gold) - set(clf.labels))
    if unknown:
        raise InvalidInput(f"labels unknown to classifier {clf.manifest['ref']}: {unknown[:10]}",
                           f"it knows {clf.labels[:10]}{'...' if len(clf.labels) > 10 else ''}")
    if len(texts) != len(gold) or not texts:
        raise InvalidInput("texts and labels must be non-empty and of the same length")
    probs = clf.proba(eo.embed(list(texts), clf.model_version), clf.model_version)
    truth = np.array([clf.labels.index(g) for g in gold])
    pred = probs.argmax(1)
    answered = probs.max(1) >= threshold
    out = metrics(truth, pred, clf.labels)
    out["abstain_rate"] = float(1 - answered.mean())
    out["false_routing_rate"] = float((answered & (pred != truth)).mean())
    return out


def _labelled(eo: Embedops, collection: str, field: str,
              labels: Mapping[str, str] | None) -> tuple[list[str], list[str]]:
    if labels is not None:
        known = {it.id for it in eo.get_items(collection, list(labels))}
        unknown = sorted(set(labels) - known)
        if unknown:
            raise InvalidInput(f"{len(unknown)} labelled ids are not in collection "
                               f"'{collection}': {unknown[:5]}", "check the label file's ids")
        return list(labels), [str(v) for v in labels.values()]
    ids, y = [], []
    for item in eo.iter_items(collection):
        value = item.metadata.get(field)
        if value is not None:
            ids.append(item.id)
            y.append(str(value))
    if not ids:
        raise InvalidInput(f"no item of collection '{collection}' has a '{field}' metadata field",
                           "name the label field, or pass a label file")
    return ids, y


def _temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    best, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 49)):
        p = _softmax(logits / t)
        nll = float(-np.log(p[np.arange(len(truth)), truth] + 1e-12).mean())
        if nll < best_nll:
            best, best_nll = float(t), nll
    return best


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)


def _check_k(k: int, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"k must be a positive integer, got {k!r}")
    return min(k, n)
