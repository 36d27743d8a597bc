"""Pictures of what a trained network learned: first-layer filters, feature-space
neighbours and maps, and saliency (input gradients, guided backpropagation, Grad-CAM).
Every picture is a PNG written atomically and titled with model, checkpoint and content;
matplotlib is the ``plot`` extra."""

from cnnlab.visualize.common import first_conv, model_label, penultimate
from cnnlab.visualize.features import (
    compressed_overlap,
    embed_2d,
    extract_features,
    nearest_neighbours,
    neighbour_overlap,
    pca_fit,
    pca_project,
    plot_embedding,
    plot_neighbours,
)
from cnnlab.visualize.filters import filter_tiles, plot_filters
from cnnlab.visualize.saliency import (
    cam_layer,
    check_relu_family,
    grad_cam,
    guided_backprop,
    guided_relus,
    input_gradient,
    non_relu_activations,
    plot_saliency,
    saliency_map,
)

__all__ = [
    "cam_layer", "check_relu_family", "compressed_overlap", "embed_2d", "extract_features",
    "filter_tiles", "first_conv", "grad_cam", "guided_backprop", "guided_relus",
    "input_gradient", "model_label", "nearest_neighbours", "neighbour_overlap",
    "non_relu_activations", "pca_fit", "pca_project", "penultimate", "plot_embedding",
    "plot_filters", "plot_neighbours", "plot_saliency", "saliency_map",
]
