"""The decks' design claims as ablations (``cnnlab ablate --list``). Deck lines refer to
``/work/shared/seeds/`` (000–004); each task is small enough for a 2-core CPU and starved of
training images (300 of MNIST, :class:`~cnnlab.ablate.core.Task`) so that the variants can
differ."""

from __future__ import annotations

from functools import partial

from cnnlab.ablate import nets
from cnnlab.ablate.core import Ablation, Claim, Task, Variant, register_ablation

SQUEEZE_NOTE = ("with batch norm after conv1 and each Fire module (not in the paper): without "
                "it this 16 K-parameter net stayed at chance on 300-400 images (an earlier "
                "run's verdict was 'invalid')")


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
        Task(lr=0.05, iters=200, input_size=(1, 12, 12)),
        (Claim("plain20", "plain56"), Claim("resnet56", "plain56")),
        "the degradation problem: the deeper plain net trains worse; residuals remove it. "
        "12x12 inputs and 200 steps keep the 56-layer nets affordable on a shared CPU")


@register_ablation("relu_tanh")
def relu_tanh() -> Ablation:
    return Ablation(
        "relu_tanh", "ReLU vs tanh: training steps to a target error",
        "deck 002:122-124; Krizhevsky et al. 2012 Fig. 1",
        (Variant("relu", partial(nets.plain_cnn, act="relu"),
                 "25 % CIFAR-10 training error 6x sooner than tanh (Fig. 1)"),
         Variant("tanh", partial(nets.plain_cnn, act="tanh"),
                 "6x more epochs to 25 % (Fig. 1)")),
        Task(val_split=1000, lr=0.02, target_error=0.10, eval_every_iters=20,
             schedule="constant", weight_decay=0.0),
        (Claim("relu", "tanh"),),
        "measure = steps until the validation error first reaches 10 % (evaluated every 20 "
        "steps on 1,000 held-out images). With batch norm, unlike AlexNet: "
        "without it this 6-conv net with a GAP head did not train with ReLU at lr 0.05 "
        "(dead units) and barely moved with either activation at lr 0.01 in 150 steps")


@register_ablation("relu_tanh_no_bn")
def relu_tanh_no_bn() -> Ablation:
    """AlexNet's Fig. 1 closer in kind than ``relu_tanh``: a four-layer net (three 5×5 convs
    and the classifier, as cuda-convnet's CIFAR-10 net) without normalisation and without
    regularisation; each activation starts from its own gain (He et al. 2015 for ReLU) as
    the paper gave each net its own best learning rate."""
    return Ablation(
        "relu_tanh_no_bn", "ReLU vs tanh without batch norm: steps to a target error",
        "deck 002:122-124; Krizhevsky et al. 2012 Fig. 1",
        (Variant("relu", partial(nets.plain_cnn, act="relu", norm=False, conv="5x5",
                                 init="act"),
                 "25 % CIFAR-10 training error 6x sooner than tanh (Fig. 1)"),
         Variant("tanh", partial(nets.plain_cnn, act="tanh", norm=False, conv="5x5",
                                 init="act"),
                 "6x more epochs to 25 % (Fig. 1)")),
        Task(val_split=1000, lr=0.02, target_error=0.15, eval_every_iters=20,
             schedule="constant", weight_decay=0.0),
        (Claim("relu", "tanh"),),
        "measure = steps until the validation error first reaches 15 % (evaluated every 20 "
        "steps on 1,000 held-out images; 10 % was out of reach for tanh in a one-seed probe). "
        "No batch norm, no weight decay, one learning rate (0.02, as relu_tanh). An earlier "
        "setting (six 3x3 convs, PyTorch's default init, digits) left the ReLU net at "
        "chance and its verdict invalid; on MNIST-300 that net's ReLU arm still stayed at "
        "10 % accuracy after 200 steps at lr 0.01 and 0.02 (one-seed probe), its signal "
        "shrinking through six layers at that init's gain")


@register_ablation("gap_fc")
def gap_fc() -> Ablation:
    return Ablation(
        "gap_fc", "Global average pooling vs a fully connected head",
        "deck 002:403; Lin et al. 2014 (NIN) Table 5",
        (Variant("gap", partial(nets.plain_cnn, head="gap"), "CIFAR-10 err 10.41 % (Table 5)"),
         Variant("fc", partial(nets.plain_cnn, head="fc"),
                 "err 10.88 % with dropout (Table 5)")),
        Task(),
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
        Task(),
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
        Task(),
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
        Task(),
        (Claim("none", "relu"),))


@register_ablation("mobilenetv2_linear")
def mobilenetv2_linear() -> Ablation:
    return Ablation(
        "mobilenetv2_linear", "MobileNetV2: linear vs ReLU6 bottleneck; shortcuts",
        "deck 001:798-868; Sandler et al. 2018 Fig. 6",
        (Variant("linear", partial(nets.mbv2_net, linear=True),
                 "linear bottleneck ~1 % top-1 above ReLU6 (Fig. 6a)"),
         Variant("relu6", partial(nets.mbv2_net, linear=False), "below linear (Fig. 6a)"),
         Variant("expansion_shortcut", partial(nets.mbv2_net, shortcut="expansion"),
                 "below the bottleneck shortcut (Fig. 6b; Sec. 6.4: shortcuts connecting "
                 "bottlenecks 'perform better than' those connecting the expanded layers)"),
         Variant("no_shortcut", partial(nets.mbv2_net, shortcut="none"),
                 "below the bottleneck shortcut (Fig. 6b)")),
        Task(),
        (Claim("linear", "relu6"), Claim("linear", "no_shortcut"),
         Claim("linear", "expansion_shortcut")),
        "the 'linear' arm has MobileNetV2's shortcuts between bottlenecks; "
        "expansion_shortcut moves each residual to join the expanded tensors (dw, "
        "project and the next 1x1 expansion inside it): same layers, same parameters")


@register_ablation("shufflenet_shuffle")
def shufflenet_shuffle() -> Ablation:
    err = {(3, True): 32.6, (3, False): 34.5, (8, True): 32.4, (8, False): 37.6}

    def paper(g, s):
        if g == 2:
            return "not in Table 3 (it gives g = 3 and 8 only)"
        return f"ShuffleNet 1x ImageNet err {err[g, s]} % (Table 3)"

    return Ablation(
        "shufflenet_shuffle", "ShuffleNet: channel shuffle on/off at g = 2, 3 and 8",
        "deck 003:884-892; Zhang et al. 2018 Table 3",
        tuple(Variant(f"g{g}_{'shuffle' if s else 'noshuffle'}",
                      partial(nets.shuffle_net, groups=g, shuffle=s), paper(g, s))
              for g in (2, 3, 8) for s in (True, False)),
        Task(input_size=(1, 32, 32)),
        tuple(Claim(f"g{g}_shuffle", f"g{g}_noshuffle") for g in (2, 3, 8)),
        "without the shuffle a group's output sees only its own group's input; the paper's "
        "gap grows with g (1.9 % at g = 3, 5.2 % at g = 8, 1x)")


@register_ablation("shufflenet_groups")
def shufflenet_groups() -> Ablation:
    # Table 2, classification error (%) at 0.5x and 0.25x
    err = {1: (45.1, 57.1), 2: (44.4, 56.8), 3: (43.2, 55.0), 4: (41.6, 54.2), 8: (42.3, 52.7)}
    return Ablation(
        "shufflenet_groups", "ShuffleNet: groups g = 1-8 at equal mult-adds",
        "deck 003:870-878; Zhang et al. 2018 Tables 1-2",
        tuple(Variant(f"g{g}", partial(nets.group_net, groups=g),
                      f"ImageNet err 0.25x {e25} %, 0.5x {e50} % (Table 2)")
              for g, (e50, e25) in err.items()),
        Task(input_size=(1, 32, 32)),
        tuple(Claim(f"g{g}", "g1") for g in (2, 3, 4, 8)),
        "each g's stage widths (multiples of 4g) are chosen, as Table 1 does, for the "
        "mult-adds of the g = 8 net at 96/192 channels (Table 4's target): g = 1, 2, 3, 4, 8 "
        "get 44, 64, 72, 80, 96 channels in stage 2. Table 2: 'models with group "
        "convolutions (g > 1) consistently perform better'; the smallest (0.25x) gain most")


@register_ablation("squeezenet_bypass")
def squeezenet_bypass() -> Ablation:
    return Ablation(
        "squeezenet_bypass", "SqueezeNet: no / simple / complex bypass",
        "deck 000:86-91; Iandola et al. 2016 Table 3",
        (Variant("none", partial(nets.squeeze_net, bypass="none", norm=True),
                 "top-1 57.5 % (Table 3)"),
         Variant("simple", partial(nets.squeeze_net, bypass="simple", norm=True),
                 "top-1 60.4 %"),
         Variant("complex", partial(nets.squeeze_net, bypass="complex", norm=True),
                 "top-1 58.8 %")),
        Task(lr=0.05),
        (Claim("simple", "none"), Claim("simple", "complex")), SQUEEZE_NOTE)


@register_ablation("width_resolution")
def width_resolution() -> Ablation:
    return Ablation(
        "width_resolution", "MobileNet: width vs resolution multiplier at equal mult-adds",
        "deck 002:899-913 (cost), Howard et al. 2017 Tables 6/7",
        (Variant("alpha1.0_16px", partial(nets.mobilenet_small, alpha=1.0),
                 "1.0 MobileNet-128: 64.4 %, 186 M mult-adds (Table 7)", (1, 16, 16)),
         Variant("alpha0.5_32px", partial(nets.mobilenet_small, alpha=0.5),
                 "0.5 MobileNet-224: 63.7 %, 149 M mult-adds (Table 6)", (1, 32, 32))),
        Task(),
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
        Task(),
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
        Task(),
        (Claim("3x3_relu", "3x3_linear"),),
        "the tested claim is ReLU vs linear between the two 3x3; the 5x5 stage is one conv "
        "(c->w) against the factorised stage's two (c->w, w->w), so costs are not 18/25 here")


@register_ablation("asymmetric_factorisation")
def asymmetric_factorisation() -> Ablation:
    return Ablation(
        "asymmetric_factorisation", "Inception v3: 3x3 vs 3x1 then 1x3, linear vs ReLU between",
        "deck 002:616-666; Szegedy et al. 2016 (Inception v3) Sec. 3.1-3.2, Figs. 3, 6-7",
        (Variant("3x3", partial(nets.plain_cnn, conv="3x3"),
                 "the unfactorised 3x3: 9 w^2 weights (deck: 900 at 10 channels)"),
         Variant("3x1_1x3_relu", partial(nets.plain_cnn, conv="3x1_1x3_relu"),
                 "the same receptive field, 33 % cheaper (Sec. 3.2; deck: 600); ReLU "
                 "between: 'always' better than linear (Sec. 3.1)"),
         Variant("3x1_1x3_linear", partial(nets.plain_cnn, conv="3x1_1x3_linear"),
                 "linear between: 'always inferior' (Sec. 3.1; Fig. 2: 76.2 vs 77.2 % "
                 "for 5x5 -> two 3x3)")),
        Task(),
        (Claim("3x1_1x3_relu", "3x1_1x3_linear"),),
        "each stage's second 3x3 (w -> w) is factorised; the first (c -> w) stays 3x3 in every "
        "arm. The paper finds the asymmetric form weak in early layers and good on 12-20 "
        "grids; here the grids are 16, 8 and 4")


@register_ablation("dwsc_full")
def dwsc_full() -> Ablation:
    return Ablation(
        "dwsc_full", "MobileNet: depthwise separable vs full convolutions",
        "deck 002:899-913; Howard et al. 2017 Table 4",
        (Variant("depthwise_separable", partial(nets.mobilenet_small),
                 "70.6 %, 4.2 M params, 569 M mult-adds (Table 4)"),
         Variant("full_conv", partial(nets.mobilenet_small, full_conv=True),
                 "71.7 %, 29.3 M params, 4866 M mult-adds (Table 4)")),
        Task(),
        (Claim("full_conv", "depthwise_separable"),),
        "the claim is the cost: 1 % accuracy for 8-9x fewer mult-adds")


# --- SimpNet's principles (Hasanpour et al. 2018; deck 002:1115-1412) ---------------------------
SIMP_PARAMS = 30_000  # the paper's 300K nets, scaled to 16x16 digits


def _simp(**kw):
    return partial(nets.simp_at, **{"params": SIMP_PARAMS, **kw})


@register_ablation("simpnet_depth")
def simpnet_depth() -> Ablation:
    paper = {8: "Arch1 8 layers, 300K: 90.21 % (Table II)", 10: "10 layers: 90.61 %",
             13: "13 layers: 89.78 %"}
    return Ablation(
        "simpnet_depth", "SimpNet: gradual expansion, depth at equal parameters",
        "deck 002:1115-1127; Hasanpour et al. 2018 Table II",
        tuple(Variant(f"{n}_layers", _simp(layers=n), p) for n, p in paper.items()),
        Task(), (Claim("10_layers", "8_layers"), Claim("10_layers", "13_layers")),
        f"plain 3x3 conv-BN-ReLU stacks, widths growing 3-fold, {SIMP_PARAMS:,} parameters "
        "each: a shallow net is 'saturated', a too-deep one 'deprived' of units")


@register_ablation("simpnet_allocation")
def simpnet_allocation() -> Ablation:
    return Ablation(
        "simpnet_allocation", "SimpNet: minimum allocation, deeper with fewer parameters",
        "deck 002:1129-1151; Hasanpour et al. 2018 Table III",
        (Variant("6_layers_2.2x", _simp(layers=6, params=int(2.2 * SIMP_PARAMS)),
                 "Arch1 6 layers, 1.1M: 92.18 % (Table III)"),
         Variant("10_layers_1.14x", _simp(layers=10, params=int(1.14 * SIMP_PARAMS)),
                 "10 layers, 570K: 92.23 %"),
         Variant("13_layers_1x", _simp(layers=13), "13 layers, 500K: 92.42 %")),
        Task(), (Claim("13_layers_1x", "6_layers_2.2x"),),
        "the paper's parameter ratios 1.1M : 570K : 500K, at 30K for the 13-layer net")


@register_ablation("simpnet_kernel")
def simpnet_kernel() -> Ablation:
    paper = {3: "Arch4 3x3, 300K: 90.21 % (Table VII)",
             5: "5x5, 1.6M: 90.99 % (3x3 at 1.6M: 92.14 %)",
             7: "7x7, 300K: 86.09 / 88.57 %"}
    return Ablation(
        "simpnet_kernel", "SimpNet: 3x3 vs larger kernels at equal parameters",
        "deck 002:1179-1200; Hasanpour et al. 2018 Table VII",
        tuple(Variant(f"{k}x{k}", _simp(layers=8, kernels=k), p) for k, p in paper.items()),
        Task(), (Claim("3x3", "5x5"), Claim("3x3", "7x7")),
        "8 layers; larger kernels leave fewer channels at the same parameter count")


@register_ablation("simpnet_correlation")
def simpnet_correlation() -> Ablation:
    return Ablation(
        "simpnet_correlation", "SimpNet: 1x1 kernels early vs at the end (correlation)",
        "deck 002:1159-1217; Hasanpour et al. 2018 Table VIII",
        (Variant("1x1_early", _simp(layers=8, kernels=(1, 1, 3, 3, 3, 3, 3, 3)),
                 "Arch5 1x1 early: 87.71 % (2x2 there: 88.50 %; Table VIII)"),
         Variant("1x1_end", _simp(layers=8, kernels=(3, 3, 3, 3, 3, 3, 1, 1)),
                 "1x1 at the end: 89.44 % (3x3 there: 89.60 %)")),
        Task(), (Claim("1x1_end", "1x1_early"),),
        "'correlation is more important in early layers': two 1x1 layers cost less early "
        "than late; both nets at equal parameters")


@register_ablation("simpnet_balanced")
def simpnet_balanced() -> Ablation:
    return Ablation(
        "simpnet_balanced", "SimpNet: balanced width vs a wide end at equal parameters",
        "deck 002:1281-1291; Hasanpour et al. 2018 Table IV",
        (Variant("balanced", _simp(layers=13, growth=2.0),
                 "Arch2 13 layers, 128K, balanced: 89.70 % (Table IV)"),
         Variant("wide_end", _simp(layers=13, growth=8.0, geometric=True),
                 "wide end: 87.20 %")),
        Task(), (Claim("balanced", "wide_end"),),
        "balanced: widths grow 2-fold linearly; wide end: 8-fold geometrically (most "
        "units in the last layers)")


@register_ablation("simpnet_delayed_pool")
def simpnet_delayed_pool() -> Ablation:
    return Ablation(
        "simpnet_delayed_pool", "SimpNet: early vs default vs delayed pooling",
        "deck 002:1239-1246; Hasanpour et al. 2018 Sec. 3.3 (Arch3, 53K)",
        (Variant("early_L3", _simp(layers=10, pools=(3, 8)), "L3 early pooling: 77.34 %"),
         Variant("default_L5", _simp(layers=10, pools=(5, 8)), "L5 default: 79.09 %"),
         Variant("delayed_L7", _simp(layers=10, pools=(7, 9)), "L7 delayed: 79.44 %")),
        Task(), (Claim("delayed_L7", "early_L3"), Claim("default_L5", "early_L3")),
        "the same 10 layers and parameters; the first pool after layer 3, 5 or 7 (later "
        "pooling costs more mult-adds: larger maps for longer)")


@register_ablation("simpnet_saf")
def simpnet_saf() -> Ablation:
    return Ablation(
        "simpnet_saf", "SimpNet: SAF-pooling (max pool + dropout) on / off",
        "deck 002:1359-1412; Hasanpour et al. 2018 Sec. 3.5, Table XI",
        (Variant("saf", _simp(layers=13, saf=0.2), "SimpNet 94.76 % with (Table XI)"),
         Variant("plain_pool", _simp(layers=13), "94.68 % without")),
        Task(), (Claim("saf", "plain_pool"),),
        "dropout 0.2 right after each max pool; nothing else changes")


# --- Inception v3: grid-size reduction (deck 002:677-685) ---------------------------------------
@register_ablation("grid_reduction")
def grid_reduction() -> Ablation:
    return Ablation(
        "grid_reduction", "Inception v3: grid-size reduction, pool first / conv first / "
        "parallel", "deck 002:677-685; Szegedy et al. 2016 Sec. 7, Figs. 9-10",
        (Variant("pool_first", partial(nets.grid_net, reduction="pool_first"),
                 "2(d/2)^2 k^2 mult-adds, but a representational bottleneck (Fig. 9 left)"),
         Variant("conv_first", partial(nets.grid_net, reduction="conv_first"),
                 "2 d^2 k^2: 4x the cost (Fig. 9 right)"),
         Variant("efficient", partial(nets.grid_net, reduction="efficient"),
                 "stride-2 conv || pool, concat: cheap, no bottleneck (Fig. 10)")),
        Task(), (Claim("efficient", "pool_first"), Claim("conv_first", "pool_first")),
        "the paper gives no accuracy for this choice, only the cost argument; the "
        "mult-adds column is the claim's other half")


# --- ShuffleNet Table 4 (deck 003:894-906) --------------------------------------------------------
@register_ablation("shufflenet_units")
def shufflenet_units() -> Ablation:
    err = {"shufflenet": "32.4 % (1x, g = 8)", "vgg_like": "50.7 %", "resnet": "37.3 %",
           "xception_like": "33.6 %", "resnext": "33.3 %"}
    return Ablation(
        "shufflenet_units", "ShuffleNet: its unit vs other units at equal mult-adds",
        "deck 003:894-906; Zhang et al. 2018 Table 4",
        tuple(Variant(u, partial(nets.unit_net, unit=u),
                      f"ImageNet err at 140 MFLOPs {err[u]} (Table 4)") for u in nets.UNITS),
        Task(input_size=(1, 32, 32)),
        tuple(Claim("shufflenet", u) for u in nets.UNITS[1:]),
        "one skeleton (conv1, max pool, two stages of two units); each unit's stage widths "
        "are chosen so that the net's mult-adds match ShuffleNet g = 8's")


# --- SqueezeNet's design space (Iandola et al. 2016, Sec. 5, Fig. 3) -----------------------------
@register_ablation("squeezenet_sr")
def squeezenet_sr() -> Ablation:
    paper = {0.125: "SR 0.125: 80.3 % top-5, 4.8 MB (Fig. 3a)", 0.25: "", 0.5: "",
             0.75: "SR 0.75: 86.0 % top-5, 19 MB", 1.0: "SR 1.0: no better than 0.75"}
    return Ablation(
        "squeezenet_sr", "SqueezeNet: squeeze ratio sweep",
        "deck 000:18-20 (strategy 2); Iandola et al. 2016 Sec. 5.1, Fig. 3a",
        tuple(Variant(f"sr={r}", partial(nets.squeeze_net, sr=r, norm=True),
                      p or "between (Fig. 3a)") for r, p in paper.items()),
        Task(lr=0.05), (Claim("sr=0.75", "sr=0.125"),), SQUEEZE_NOTE)


@register_ablation("squeezenet_pct3x3")
def squeezenet_pct3x3() -> Ablation:
    paper = {0.01: "1 % 3x3: lower (Fig. 3b)", 0.25: "between", 0.5: "50 %: 85.6 % top-5, "
             "the plateau (Fig. 3b)", 0.75: "no better than 50 %", 0.99: "no better than 50 %"}
    return Ablation(
        "squeezenet_pct3x3", "SqueezeNet: share of 3x3 filters in the expand layers",
        "deck 000:18-20 (strategy 1); Iandola et al. 2016 Sec. 5.2, Fig. 3b",
        tuple(Variant(f"pct3x3={r}", partial(nets.squeeze_net, pct3x3=r, norm=True), p)
              for r, p in paper.items()),
        Task(lr=0.05), (Claim("pct3x3=0.5", "pct3x3=0.01"),), SQUEEZE_NOTE)


# --- DenseNet: parameter efficiency of -B, -C and -BC (Huang et al. 2017, Fig. 4) ---------------
@register_ablation("densenet_efficiency")
def densenet_efficiency() -> Ablation:
    forms = {"densenet": (False, 1.0, "DenseNet (L=40, k=12) 1.0 M: C10+ err 5.24 % (Table 2)"),
             "densenet_b": (True, 1.0, "between (Fig. 4 left)"),
             "densenet_c": (False, 0.5, "between (Fig. 4 left)"),
             "densenet_bc": (True, 0.5, "DenseNet-BC (L=100, k=12) 0.8 M: err 4.51 %; the "
                                        "most parameter-efficient (Fig. 4 left)")}
    return Ablation(
        "densenet_efficiency", "DenseNet: bottleneck and compression at equal parameters",
        "deck 003:79-199; Huang et al. 2017 Table 2, Fig. 4",
        tuple(Variant(n, partial(nets.dense_net, bottleneck=b, compression=c), p)
              for n, (b, c, p) in forms.items()),
        Task(), (Claim("densenet_bc", "densenet"),),
        "three dense blocks of 4 layers; the growth rate of each form is chosen for about "
        "60K parameters")


DENSE_FORMS = {"DenseNet": (False, 1.0), "DenseNet-B": (True, 1.0),
               "DenseNet-C": (False, 0.5), "DenseNet-BC": (True, 0.5)}
DENSE_SIZES = (20_000, 60_000, 180_000)


@register_ablation("densenet_curve")
def densenet_curve() -> Ablation:
    """Huang et al. 2017 Fig. 4 left in kind: validation error vs parameters for the four
    forms, each at three sizes (the growth rate k chosen for about 20K, 60K and 180K
    parameters); DenseNet-BC should reach a given error with the fewest parameters."""
    paper = {"DenseNet": "highest error at each size (Fig. 4 left); Table 2: 1.0 M 5.24 %, "
                         "7.0 M 4.10 %, 27.2 M 3.74 % (C10+)",
             "DenseNet-B": "below DenseNet (Fig. 4 left)",
             "DenseNet-C": "below DenseNet (Fig. 4 left)",
             "DenseNet-BC": "lowest error at each size (Fig. 4 left); Table 2: 0.8 M 4.51 %, "
                            "15.3 M 3.62 %, 25.6 M 3.46 %"}

    def name(form, size):
        return f"{form.lower().replace('-', '_')}_{size // 1000}k"

    return Ablation(
        "densenet_curve", "DenseNet: error vs parameters for DenseNet, -B, -C, -BC",
        "deck 003:79-199; Huang et al. 2017 Fig. 4 left, Table 2",
        tuple(Variant(name(form, size), partial(nets.dense_net, bottleneck=b, compression=c,
                                                params=size), paper[form], curve=form)
              for form, (b, c) in DENSE_FORMS.items() for size in DENSE_SIZES),
        Task(),
        tuple(Claim(name("DenseNet-BC", size), name(other, size))
              for size in DENSE_SIZES for other in ("DenseNet", "DenseNet-B", "DenseNet-C")),
        "three dense blocks of 4 layers; each form's growth rate k (a whole number) is "
        "chosen for the parameters nearest 20K, 60K and 180K, so sizes match to within "
        "about 10 %; the plot is error vs parameters, one line per form")


# --- VGG: initialising a deeper net from net A (deck 001:160, 002:225-287) ------------------------
def _from_net_a(model, split, cfg):
    """VGG Sec. 3.1: train net A from the random initialisation, then copy its first convs
    and its three FC layers into the deeper net, whose other layers keep theirs."""
    from cnnlab.train import train

    net_a = nets.mini_vgg(split.in_chans, split.num_classes, nets.VGG_A, init="normal")
    train(net_a, split, cfg, progress=False)
    nets.init_from(model, net_a)


@register_ablation("vgg_init")
def vgg_init() -> Ablation:
    """Simonyan & Zisserman 2015 Sec. 3.1: net A trains from N(0, 10⁻²); a deeper net from
    it can stall, unless its first four convs and last three FC layers start from the
    trained net A; Glorot's init needs no pre-training. "normal" is N(0, 10⁻²) in kind
    (:func:`~cnnlab.ablate.nets.vgg_std`): each layer's std gives it the per-layer gain of
    the matching VGG layer, the first layer's against VGG's 0-255 pixel input, since the
    number 0.01 at our 16-64 channels (VGG: 64-512) stalled even net A."""
    return Ablation(
        "vgg_init", "VGG: a deeper net initialised from net A vs random and Glorot init",
        "deck 001:160, 002:225-287; Simonyan & Zisserman 2015 Sec. 3.1",
        (Variant("net_a", partial(nets.mini_vgg, stages=nets.VGG_A, init="normal"),
                 "net A (11 layers) trains from N(0, 10^-2): top-1 err 29.6 % (Table 3)"),
         Variant("normal", partial(nets.mini_vgg, init="normal"),
                 "deeper net from N(0, 10^-2): 'bad initialisation can stall learning' "
                 "(Sec. 3.1)"),
         Variant("from_net_a", partial(nets.mini_vgg, init="normal"),
                 "first convs + 3 FC from the trained net A, the rest N(0, 10^-2): "
                 "trains; D top-1 err 27.0 % (Table 3)",
                 prepare=_from_net_a),
         Variant("glorot", partial(nets.mini_vgg, init="glorot"),
                 "Glorot: 'possible to initialise the weights without pre-training'")),
        Task(lr=0.02, weight_decay=5e-4),
        (Claim("from_net_a", "normal", worse_may_stall=True),
         Claim("glorot", "normal", worse_may_stall=True)),
        "no batch norm, as VGG; net A is 4 conv + 3 FC (one conv per stage, two in the "
        "last), the deeper net 7 conv + 3 FC (VGG-D's first three stages in kind). "
        "N(0, 10^-2) in kind: each layer's std = 0.01 sqrt(VGG fan-in / ours) (0.02 for "
        "the 3x3 convs, 0.06-0.1 for the FC layers), the first conv's times VGG's input "
        "std of 58 (0-255 pixels; ours are standardised), so that each layer's gain is the "
        "matching VGG layer's. The paper's 0.01 itself stalled even net A here (output std "
        "at init 1e-7 against VGG-A's 2e-3); per-layer gains alone, without the input "
        "scale, still left net A at chance after 1,000 steps. Net A is trained first with "
        "the same steps, so from_net_a costs twice the training")
