"""Training of static word vectors (word2vec, fastText) from a corpus file or folder."""

from embedops.train.word2vec import TrainConfig, TrainResult, train_static

__all__ = ["TrainConfig", "TrainResult", "train_static"]
