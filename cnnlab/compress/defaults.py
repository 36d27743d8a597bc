"""What ``cnnlab compress MODEL`` does with no other flag: Deep Compression as its papers ran it.

For the networks Han et al. compressed, the per-layer pruning rates are theirs (the kept
fraction of each layer's weights) and the retraining settings are the ones that reach their
ratios on the MNIST split in ``data/`` (``experiments/deep_compression.py`` measures them).
Any other network gets the quality-parameter rule of Han 2015 Sec. 3 — prune the weights
below ``q × σ`` of their layer — with a gentler ``q`` for convolutions, which Han found more
sensitive (Fig. 5), than for fully-connected layers."""

from __future__ import annotations

# Han et al. 2015 ("Learning both Weights and Connections"), kept % per layer
PAPER_RATES: dict[str, dict] = {
    # Table 1: fc1 8 %, fc2 9 %, fc3 26 %. fc1 goes to 7 % because a real file carries what
    # the paper's count leaves out (biases, codebooks, Huffman tables, fillers): with 8 %
    # the .dcz is 37x, with 7 % 42x (the paper: 40x, Han 2016 Table 2).
    "lenet_300_100": dict(prune="fc1=7%,fc2=9%,fc3=26%", rounds=4, prune_epochs=4,
                          quant_epochs=2, lr=0.1, quant_lr=0.001,
                          source="Han 2015 Table 1 (fc1 8 % → 7 %, see above)"),
    # Table 2: conv1 66 %, conv2 12 %, fc1 8 %, fc2 19 % (fc1 → 6 %, as above: 39x)
    "lenet5_caffe": dict(prune="conv1=66%,conv2=12%,fc1=6%,fc2=19%", rounds=4, prune_epochs=3,
                         quant_epochs=2, lr=0.02, quant_lr=0.001,
                         source="Han 2015 Table 2 (fc1 8 % → 6 %, see above)"),
    # Table 4 (fc6, fc7, fc8 are cnnlab's fc1, fc2, fc3)
    "alexnet": dict(prune="conv1=84%,conv2=38%,conv3=35%,conv4=37%,conv5=37%,"
                          "fc1=9%,fc2=9%,fc3=25%", source="Han 2015 Table 4"),
    # Table 5 (conv1_1 … conv5_3 are cnnlab's conv1 … conv13; fc6-fc8 its fc1-fc3)
    "vgg16": dict(prune="conv1=58%,conv2=22%,conv3=34%,conv4=36%,conv5=53%,conv6=24%,"
                        "conv7=42%,conv8=32%,conv9=27%,conv10=34%,conv11=35%,conv12=29%,"
                        "conv13=36%,fc1=1%,fc2=2%,fc3=23%", source="Han 2015 Table 5"),
    # SqueezeNet Table 1's "sparsity" column (kept %; layers not named stay dense)
    "squeezenet1_0": dict(prune="fire*.expand3x3=33%,fire9.expand3x3=30%,"
                                "fire6.expand1x1=50%,fire8.expand1x1=50%,"
                                "fire7.squeeze1x1=50%,fire9.squeeze1x1=50%,conv10.conv=20%",
                          source="SqueezeNet Table 1"),
}

QUALITY_RULE = dict(prune="conv=q0.7,fc=q1.4",
                    source="Han 2015 Sec. 3 quality parameter: |w| < q·σ of the layer pruned")


def default_settings(name: str) -> dict:
    """The compression settings of ``name`` when the user gives none (a copy; ``source``
    says where the rates come from)."""
    return dict(PAPER_RATES.get(name, QUALITY_RULE))
