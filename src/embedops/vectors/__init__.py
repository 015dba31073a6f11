"""Pure post-processing of embedding matrices: normalize, PCA, truncate, quantize."""

from embedops.vectors.postprocess import (
    PCAState,
    Postprocess,
    fit_pca,
    l2_normalize,
    load_pca,
    parse_step,
    save_pca,
    supports_matryoshka,
    truncate,
)
from embedops.vectors.quantize import (
    Int8Calibration,
    Quantization,
    QuantizedVectors,
    bytes_per_vector,
    dequantize,
    quantize,
    similarity,
)

__all__ = [
    "Int8Calibration",
    "PCAState",
    "Postprocess",
    "Quantization",
    "QuantizedVectors",
    "bytes_per_vector",
    "dequantize",
    "fit_pca",
    "l2_normalize",
    "load_pca",
    "parse_step",
    "quantize",
    "save_pca",
    "similarity",
    "supports_matryoshka",
    "truncate",
]
