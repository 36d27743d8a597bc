"""The decks' design claims as ablations (``cnnlab ablate --list``). Deck lines refer to
``/work/shared/seeds/`` (000–004); each task is small enough for a 2-core CPU and starved of
training images so that the variants can differ."""

from __future__ import annotations

from functools import partial

from cnnlab.ablate import nets
from cnnlab.ablate.core import Ablation, Claim, Task, Variant, register_ablation


def _registered(name: str):
    def build(in_chans, num_classes):
        from cnnlab.models import create_model

        return create_model(name, in_chans=in_chans, num_classes=num_classes)
    return build


@register_ablation("degradation")
def degradation() -> Ablation:
    paper = {"plain20": "CIFAR-10 err ~9 % (Fig. 6 left, read off)",
             "plain56": "err higher than plain-20 (Fig. 6 left; 'degradation')",
             "resnet20": "CIFAR-10 err 8.75 % (Table 6)",
             "resnet56": "CIFAR-10 err 6.93 % (Table 6)"}
    return Ablation(
        "degradation", "Plain vs residual nets at 20 and 56 layers",
        "deck 001:456-520, 002:700-836; He et al. 2016 Fig. 1/6, Table 6",
        tuple(Variant(n, _registered(n), paper[n]) for n in paper),
        Task(train_images=600, input_size=(1, 16, 16), iters=400, lr=0.05),
        (Claim("plain20", "plain56"), Claim("resnet56", "plain56")),
        "the degradation problem: the deeper plain net trains worse; residuals remove it")


@register_ablation("relu_tanh")
def relu_tanh() -> Ablation:
    return Ablation(
        "relu_tanh", "ReLU vs tanh: training steps to a target error",
        "deck 002:122-124; Krizhevsky et al. 2012 Fig. 1",
        (Variant("relu", partial(nets.plain_cnn, act="relu"),
                 "25 % CIFAR-10 training error 6x sooner than tanh (Fig. 1)"),
         Variant("tanh", partial(nets.plain_cnn, act="tanh"),
                 "6x more epochs to 25 % (Fig. 1)")),
        Task(train_images=500, iters=200, lr=0.02, batch_size=32, target_error=0.10,
             schedule="constant", weight_decay=0.0),
        (Claim("relu", "tanh"),),
        "measure = steps until the validation error first reaches 10 % (evaluated once per "
        "pass over the 500 training images, 16 steps). With batch norm, unlike AlexNet: "
        "without it this 6-conv net with a GAP head did not train with ReLU at lr 0.05 "
        "(dead units) and barely moved with either activation at lr 0.01 in 150 steps")


@register_ablation("gap_fc")
def gap_fc() -> Ablation:
    return Ablation(
        "gap_fc", "Global average pooling vs a fully connected head",
        "deck 002:403; Lin et al. 2014 (NIN) Table 5",
        (Variant("gap", partial(nets.plain_cnn, head="gap"), "CIFAR-10 err 10.41 % (Table 5)"),
         Variant("fc", partial(nets.plain_cnn, head="fc"),
                 "err 10.88 % with dropout (Table 5)")),
        Task(train_images=300, iters=300),
        (Claim("gap", "fc"),), "the same trunk; only the classifier differs")


@register_ablation("strided_pool")
def strided_pool() -> Ablation:
    return Ablation(
        "strided_pool", "Max pooling vs strided convolution for down-sampling",
        "deck 002:1248-1260; Hasanpour et al. (SimpNet) Table VI",
        (Variant("maxpool", partial(nets.plain_cnn, down="max"),
                 "SimpNet-15 68.89 % (CIFAR-100), ResNet-32 93.75 % (Table VI)"),
         Variant("strided", partial(nets.plain_cnn, down="stride"),
                 "SimpNet-15 68.10 %, ResNet-32 93.46 % (Table VI)")),
        Task(train_images=300, iters=300),
        (Claim("maxpool", "strided"),),
        "SimpNet: 'max-pooling outperforms the strided convolution regardless of architecture'")


@register_ablation("xception_segments")
def xception_segments() -> Ablation:
    return Ablation(
        "xception_segments", "Xception's spectrum: segments of the spatial convolution",
        "deck 000:102-182, 003:331-412; Chollet 2017 Sec. 2, Fig. 4",
        tuple(Variant(f"segments={s}", partial(nets.segment_net, segments=s), p) for s, p in (
            (1, "regular conv + 1x1 (one end of the spectrum)"),
            (4, "Inception-style: 4 segments"),
            ("C", "depthwise separable: Xception 79.0 % vs Inception V3 78.2 % top-1 "
                  "(Table 1)"))),
        Task(train_images=300, iters=300),
        (Claim("segments=C", "segments=1"),),
        "the 'extreme Inception' hypothesis: as many segments as channels loses nothing")


@register_ablation("xception_act")
def xception_act() -> Ablation:
    return Ablation(
        "xception_act", "Activation between depthwise and pointwise convolution",
        "deck 004:438-467; Chollet 2017 Fig. 10",
        tuple(Variant(a, partial(nets.segment_net, mid_act=a), p) for a, p in (
            ("none", "best: no intermediate activation (Fig. 10)"),
            ("relu", "worse than none (Fig. 10)"),
            ("elu", "between (Fig. 10)"))),
        Task(train_images=300, iters=300),
        (Claim("none", "relu"),))


@register_ablation("mobilenetv2_linear")
def mobilenetv2_linear() -> Ablation:
    return Ablation(
        "mobilenetv2_linear", "MobileNetV2: linear vs ReLU6 bottleneck; shortcuts",
        "deck 001:798-868; Sandler et al. 2018 Fig. 6",
        (Variant("linear", partial(nets.mbv2_net, linear=True),
                 "linear bottleneck ~1 % top-1 above ReLU6 (Fig. 6a)"),
         Variant("relu6", partial(nets.mbv2_net, linear=False), "below linear (Fig. 6a)"),
         Variant("no_shortcut", partial(nets.mbv2_net, shortcut=False),
                 "below the bottleneck shortcut (Fig. 6b)")),
        Task(train_images=300, iters=300),
        (Claim("linear", "relu6"), Claim("linear", "no_shortcut")))


@register_ablation("shufflenet_shuffle")
def shufflenet_shuffle() -> Ablation:
    err = {(3, True): 32.6, (3, False): 34.5, (8, True): 32.4, (8, False): 37.6}
    return Ablation(
        "shufflenet_shuffle", "ShuffleNet: channel shuffle on/off at g = 3 and 8",
        "deck 003:884-892; Zhang et al. 2018 Table 3",
        tuple(Variant(f"g{g}_{'shuffle' if s else 'noshuffle'}",
                      partial(nets.shuffle_net, groups=g, shuffle=s),
                      f"ShuffleNet 1x ImageNet err {err[g, s]} % (Table 3)")
              for g in (3, 8) for s in (True, False)),
        Task(train_images=400, input_size=(1, 32, 32), iters=300),
        (Claim("g3_shuffle", "g3_noshuffle"), Claim("g8_shuffle", "g8_noshuffle")),
        "without the shuffle a group's output sees only its own group's input")


@register_ablation("squeezenet_bypass")
def squeezenet_bypass() -> Ablation:
    return Ablation(
        "squeezenet_bypass", "SqueezeNet: no / simple / complex bypass",
        "deck 000:86-91; Iandola et al. 2016 Table 3",
        (Variant("none", partial(nets.squeeze_net, bypass="none"), "top-1 57.5 % (Table 3)"),
         Variant("simple", partial(nets.squeeze_net, bypass="simple"), "top-1 60.4 %"),
         Variant("complex", partial(nets.squeeze_net, bypass="complex"), "top-1 58.8 %")),
        Task(train_images=400, iters=300, lr=0.02),
        (Claim("simple", "none"), Claim("simple", "complex")))


@register_ablation("width_resolution")
def width_resolution() -> Ablation:
    return Ablation(
        "width_resolution", "MobileNet: width vs resolution multiplier at equal mult-adds",
        "deck 002:899-913 (cost), Howard et al. 2017 Tables 6/7",
        (Variant("alpha1.0_16px", partial(nets.mobilenet_small, alpha=1.0),
                 "1.0 MobileNet-128: 64.4 %, 186 M mult-adds (Table 7)", (1, 16, 16)),
         Variant("alpha0.5_32px", partial(nets.mobilenet_small, alpha=0.5),
                 "0.5 MobileNet-224: 63.7 %, 149 M mult-adds (Table 6)", (1, 32, 32))),
        Task(train_images=400, iters=300),
        (Claim("alpha1.0_16px", "alpha0.5_32px"),),
        "mult-adds scale as alpha^2 rho^2: halving the width quarters them, as halving the "
        "side does; the paper's pair favours resolution reduction by 0.7 %")


@register_ablation("overlap_pool")
def overlap_pool() -> Ablation:
    return Ablation(
        "overlap_pool", "Overlapping (3x3/2) vs non-overlapping (2x2/2) max pooling",
        "deck 002:102-109; Krizhevsky et al. 2012 Sec. 3.4",
        (Variant("overlap", partial(nets.plain_cnn, down="overlap"),
                 "top-1 err 0.4 % lower than s = z = 2 (Sec. 3.4)"),
         Variant("non_overlap", partial(nets.plain_cnn, down="max"), "the baseline")),
        Task(train_images=300, iters=300),
        (Claim("overlap", "non_overlap"),),
        "AlexNet: 'models with overlapping pooling find it slightly more difficult to overfit'")


@register_ablation("factorisation")
def factorisation() -> Ablation:
    return Ablation(
        "factorisation", "Inception factorisation: 5x5 vs two 3x3, linear vs ReLU between",
        "deck 002:606-666; Szegedy et al. 2016 (Inception v3) Sec. 3.1, Fig. 2",
        (Variant("5x5", partial(nets.plain_cnn, conv="5x5"), "the unfactorised baseline"),
         Variant("3x3_relu", partial(nets.plain_cnn, conv="3x3_relu"),
                 "ReLU between: 77.2 % top-1 (Fig. 2)"),
         Variant("3x3_linear", partial(nets.plain_cnn, conv="3x3_linear"),
                 "linear between: 76.2 % (Fig. 2)")),
        Task(train_images=300, iters=300),
        (Claim("3x3_relu", "3x3_linear"),),
        "the tested claim is ReLU vs linear between the two 3x3; the 5x5 stage is one conv "
        "(c->w) against the factorised stage's two (c->w, w->w), so costs are not 18/25 here")


@register_ablation("dwsc_full")
def dwsc_full() -> Ablation:
    return Ablation(
        "dwsc_full", "MobileNet: depthwise separable vs full convolutions",
        "deck 002:899-913; Howard et al. 2017 Table 4",
        (Variant("depthwise_separable", partial(nets.mobilenet_small),
                 "70.6 %, 4.2 M params, 569 M mult-adds (Table 4)"),
         Variant("full_conv", partial(nets.mobilenet_small, full_conv=True),
                 "71.7 %, 29.3 M params, 4866 M mult-adds (Table 4)")),
        Task(train_images=400, iters=300),
        (Claim("full_conv", "depthwise_separable"),),
        "the claim is the cost: 1 % accuracy for 8-9x fewer mult-adds")
