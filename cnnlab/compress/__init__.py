"""Deep Compression (Han et al. 2015, 2016): magnitude pruning, trained quantization with
weight sharing, Huffman coding, and the ``.dcz`` compressed model file.

``compress_model(model, name, config, split, CompressSettings(prune="fc1=8%", ...),
out="model.dcz")`` runs the pipeline; ``load_compressed("model.dcz")`` returns the ready model;
``decompress("model.dcz", "weights.safetensors")`` writes the decoded weights.
"""

from cnnlab.compress.fileformat import CompressedFileError
from cnnlab.compress.pipeline import (
    CompressResult,
    CompressSettings,
    build_file,
    compress_model,
    decompress,
    load_compressed,
)
from cnnlab.compress.prune import Pruner, adjust_dropout, prunable_layers, regularizer
from cnnlab.compress.quantize import bake, compression_rate, kmeans_1d, quantize_layer
from cnnlab.compress.report import activation_density, pruning_table
from cnnlab.compress.sparse import sparse_decode, sparse_encode
from cnnlab.compress.structured import load_pruned, save_pruned, slimming_loss, slimming_step
from cnnlab.compress.structured import prune as prune_channels

__all__ = ["CompressResult", "CompressSettings", "CompressedFileError", "Pruner",
           "activation_density", "adjust_dropout", "bake", "build_file", "compress_model",
           "compression_rate", "decompress", "kmeans_1d", "load_compressed", "prunable_layers",
           "pruning_table", "quantize_layer", "regularizer", "sparse_decode", "sparse_encode"]
__all__ += ["load_pruned", "prune_channels", "save_pruned", "slimming_loss", "slimming_step"]
