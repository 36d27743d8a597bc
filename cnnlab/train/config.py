"""``TrainConfig`` and the papers' training recipes (``cnnlab recipes``)."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass, field

OPTIMIZERS = ("sgd", "rmsprop", "adamw")
SCHEDULES = ("constant", "step", "multistep", "googlenet", "poly", "inv", "cosine", "plateau")


@dataclass
class TrainConfig:
    """Everything a run depends on. ``iters`` (optimizer steps), when set, overrides
    ``epochs``; ``milestones`` are in epochs, or in steps when ``schedule_unit="step"``."""

    epochs: float = 10
    iters: int | None = None
    batch_size: int = 128
    lr: float = 0.1
    optimizer: str = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    no_decay_bias_bn: bool = True   # biases, BN/LN scales and other 1-D parameters
    no_decay_depthwise: bool = False  # MobileNet: "no weight decay on depthwise filters"
    betas: tuple[float, float] = (0.9, 0.999)
    rmsprop_alpha: float = 0.9
    eps: float = 1e-8
    schedule: str = "cosine"
    schedule_unit: str = "epoch"
    milestones: tuple[float, ...] = ()
    step_size: float = 0.0          # schedule="step": multiply by gamma every step_size units
    gamma: float | tuple[float, ...] = 0.1  # multistep: one factor, or one per milestone
    power: float = 0.9              # poly, inv
    min_lr: float = 0.0
    warmup: float = 0.0             # linear warm-up length, in schedule units
    warmup_start: float = 0.1       # as a fraction of lr
    plateau_patience: int = 3       # epochs without improvement of the validation loss
    plateau_threshold: float = 1e-3
    label_smoothing: float = 0.0
    aux_weight: float | tuple[float, ...] = 0.3  # GoogLeNet's auxiliary losses
    grad_clip: float | None = None
    augment: str = ""
    normalize: bool = True
    amp: str = "auto"               # auto (bf16/fp16 on CUDA, off on CPU) | bf16 | fp16 | off
    channels_last: bool | None = None  # None: whenever the model runs with it
    compile: bool = False
    ema: float = 0.0                # decay per step, e.g. 0.9998; 0 = off
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = 256
    out_dir: str | None = None
    resume: bool | str = False
    save_every: int = 0             # also checkpoint every N steps (0: at epoch ends only)
    eval_every: int = 1             # epochs
    deterministic: bool = False
    input_size: tuple[int, ...] | None = None  # the model's input; larger images are cropped

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def need(ok, msg):
            if not ok:
                raise ValueError(msg)
        self._check_types()
        need(self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r}; "
             f"known: {', '.join(OPTIMIZERS)}")
        need(self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r}; "
             f"known: {', '.join(SCHEDULES)}")
        need(self.schedule_unit in ("epoch", "step"), "schedule_unit must be 'epoch' or 'step'")
        need(self.amp in ("auto", "bf16", "fp16", "off"), "amp must be auto, bf16, fp16 or off")
        need(self.iters is not None or self.epochs > 0, f"epochs must be > 0, got {self.epochs}")
        need(self.iters is None or self.iters > 0, f"iters must be > 0, got {self.iters}")
        need(self.batch_size > 0, f"batch size must be positive, got {self.batch_size}")
        need(self.lr > 0, f"learning rate must be positive, got {self.lr}")
        need(self.weight_decay >= 0, "weight decay must be >= 0")
        need(0 <= self.label_smoothing < 1, "label smoothing must be in [0, 1)")
        need(0 <= self.ema < 1, "ema decay must be in [0, 1)")
        need(self.save_every >= 0, "save_every must be >= 0")
        need(self.eval_every >= 1, "eval_every must be >= 1")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip must be > 0")
        need(self.momentum >= 0, "momentum must be >= 0")
        need(self.warmup >= 0, "warmup must be >= 0")
        need(self.seed >= 0, "seed must be >= 0")
        from cnnlab.data.augment import parse_augment

        parse_augment(self.augment)  # a malformed --augment fails here, not mid-run
        if isinstance(self.gamma, (tuple, list)):
            need(self.schedule == "multistep" and len(self.gamma) == len(self.milestones),
                 "a gamma per milestone needs schedule='multistep' and one per milestone")

    def _check_types(self) -> None:
        """Each setting has its declared kind (a finite number where a number belongs), so
        ``--opt warmup=abc`` is refused here and not by a comparison in the middle of a run."""
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            kinds = f.type.replace(" ", "").split("|")
            if v is None and "None" in kinds or any(_fits(v, k) for k in kinds):
                continue
            raise ValueError(f"training setting {f.name}={v!r}: expected "
                             f"{' or '.join(_KIND_NAMES.get(k, k) for k in kinds)}")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        names = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise ValueError(f"unknown training setting(s) {', '.join(sorted(unknown))}")
        conv = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**conv)

    def replace(self, **changes) -> TrainConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown training setting(s) {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)


def _is_number(v, whole: bool = False) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return math.isfinite(v) and (not whole or float(v).is_integer())


def _fits(v, kind: str) -> bool:
    if kind == "bool":
        return isinstance(v, bool)
    if kind in ("int", "float"):
        return _is_number(v, whole=kind == "int")
    if kind == "str":
        return isinstance(v, str)
    if kind.startswith("tuple"):
        return isinstance(v, (tuple, list)) and all(_is_number(e) for e in v)
    return True


_KIND_NAMES = {"bool": "true or false", "int": "a whole number", "float": "a finite number",
               "str": "text", "None": "None", "tuple[float,float]": "two numbers, e.g. [0.9, 0.99]",
               "tuple[float,...]": "a list of numbers, e.g. [30, 60]",
               "tuple[int,...]": "a list of whole numbers"}


@dataclass(frozen=True)
class Recipe:
    name: str
    source: str
    settings: dict
    models: tuple[str, ...] = ()
    notes: str = ""
    extra: dict = field(default_factory=dict)

    def config(self, **overrides) -> TrainConfig:
        return TrainConfig(**{**self.settings, **overrides})

    def configure(self, overrides: dict) -> TrainConfig:
        """The recipe's settings with ``overrides`` (checked); epochs given in place of
        iterations (``iters=None``) also turn a step-unit schedule's milestones off."""
        settings = {**self.settings, **overrides}
        if settings.get("schedule_unit") == "step" and "iters" in overrides \
                and overrides["iters"] is None:
            settings["schedule_unit"] = "epoch"
            settings["milestones"] = ()
        return TrainConfig.from_dict(settings)


RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe("default", "cnnlab", dict(), ("*",),
           "SGD 0.1, momentum 0.9, wd 5e-4 (none on biases/BN), cosine, 10 epochs"),
    Recipe("lenet", "LeCun et al. 1998 (Sec. II, Appendix A)", dict(
        epochs=20, batch_size=32, lr=1e-3, optimizer="sgd", momentum=0.9, weight_decay=0.0,
        schedule="multistep", milestones=(2, 5, 8, 12), gamma=(0.4, 0.5, 0.5, 0.2)),
        ("lenet5",),
        "inputs normalised to zero mean and unit variance; 20 passes, the rate cut after "
        "passes 2, 5, 8 and 12 in the paper's ratios (0.0005, 0.0002, 0.0001, 0.00005, "
        "0.00001 for its diagonal Levenberg-Marquardt; here SGD-momentum from 1e-3, batch 32)"),
    Recipe("lenet_caffe", "Han et al. 2015 (Caffe's lenet_solver.prototxt)", dict(
        iters=10000, batch_size=64, lr=0.01, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
        no_decay_bias_bn=False, schedule="inv", schedule_unit="step", gamma=1e-4,
        power=0.75), ("lenet5_caffe", "lenet_300_100"),
        "the Caffe LeNet Han et al. prune: SGD 0.01, momentum 0.9, wd 5e-4, lr·(1 + 1e-4·"
        "iter)^-0.75, batch 64, 10k iterations"),
    Recipe("alexnet", "Krizhevsky et al. 2012, Sec. 5", dict(
        epochs=90, batch_size=128, lr=0.01, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
        no_decay_bias_bn=False, schedule="plateau", gamma=0.1, plateau_patience=3,
        augment="flip,pca:0.1"), ("alexnet*",),
        "lr 0.01 'manually reduced' ÷10 when the validation error stopped improving "
        "(reduce-on-plateau); 224 random crops of 256 + flips; PCA colour σ = 0.1; dropout "
        "0.5 is the model's"),
    Recipe("vgg", "Simonyan & Zisserman 2015, Sec. 3.1", dict(
        epochs=74, batch_size=256, lr=0.01, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
        no_decay_bias_bn=False, schedule="plateau", gamma=0.1, plateau_patience=3,
        augment="scale:1.14-2.29,flip,rgbshift:0.1"), ("vgg*",),
        "÷10 on validation plateau (3 times in 74 epochs); scale jitter S ∈ [256, 512] for "
        "224 crops; flips; random RGB shift"),
    Recipe("bn_inception", "Ioffe & Szegedy 2015, Sec. 4.2.1 (BN-x5)", dict(
        epochs=100, batch_size=32, lr=0.0075, optimizer="sgd", momentum=0.9,
        weight_decay=4e-5, schedule="step", step_size=8 / 6, gamma=0.96,
        augment="scale:1.0-1.5,flip"), ("bn_inception",),
        "BN-x5: the Inception recipe with 5x the learning rate (0.0075), L2 weight decay "
        "reduced 5x (here the googlenet recipe's 2e-4 / 5), lr decay 6x faster (4 % every "
        "8/6 epochs), no dropout (the model's drop_rate is 0), no LRN (the model has none), "
        "training data shuffled every epoch, fewer photometric distortions (no PCA colour); "
        "batch 32 and 100 epochs are this config's, not the paper's"),
    Recipe("googlenet", "Szegedy et al. 2015, Sec. 6", dict(
        epochs=250, batch_size=128, lr=0.01, optimizer="sgd", momentum=0.9, weight_decay=2e-4,
        schedule="googlenet", aux_weight=0.3, augment="scale:1.0-1.5,flip,pca:0.1"),
        ("googlenet*", "inception*"),
        "momentum 0.9, lr decreased 4 % every 8 epochs, auxiliary losses weighted 0.3 (the "
        "paper states neither the initial lr nor the weight decay)"),
    Recipe("resnet_cifar", "He et al. 2016, Sec. 4.2", dict(
        iters=64000, batch_size=128, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
        no_decay_bias_bn=False, schedule="multistep", schedule_unit="step",
        milestones=(32000, 48000), gamma=0.1, augment="crop:4,flip"),
        ("resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet1202"),
        "SGD 0.1, momentum 0.9, wd 1e-4, batch 128, ÷10 at 32k and 48k iterations, 64k in "
        "all; 4-pixel zero pad + random 32×32 crop + flip (per-channel normalisation stands "
        "in for the per-pixel mean subtraction)"),
    Recipe("resnet_imagenet", "He et al. 2016, Sec. 3.4", dict(
        iters=600000, batch_size=256, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
        no_decay_bias_bn=False, schedule="plateau", gamma=0.1, plateau_patience=3,
        augment="scale:1.14-2.29,flip,pca:0.1"), ("resnet*", "resnext*", "wide_resnet*"),
        "SGD 0.1 ÷10 when the error plateaus, momentum 0.9, wd 1e-4, batch 256, 60×10⁴ "
        "iterations; scale augmentation [256, 480], flips, standard colour augmentation"),
    Recipe("squeezenet", "Iandola et al. 2016 (the authors' SqueezeNet v1.0 solver)", dict(
        iters=170000, batch_size=512, lr=0.04, optimizer="sgd", momentum=0.9,
        weight_decay=2e-4, no_decay_bias_bn=False, schedule="poly", schedule_unit="step",
        power=1.0, augment="flip"), ("squeezenet*",),
        "the paper: 'a learning rate of 0.04, and we linearly decrease' it ('poly', power 1); "
        "the authors' first v1.0 solver: 170k iterations of batch 32 x iter_size 16, "
        "momentum 0.9, wd 2e-4 (their later solver: lr 0.08, power 0.5, 85k iterations of "
        "1024); dropout 0.5 after fire9 is the model's"),
    Recipe("nin", "Lin et al. 2014, Sec. 4.1", dict(
        epochs=100, batch_size=128, lr=0.1, optimizer="sgd", momentum=0.9, weight_decay=1e-4,
        no_decay_bias_bn=False, schedule="plateau", gamma=0.1, plateau_patience=3),
        ("nin*",),
        "batch 128; 'the learning rate is lowered by a scale of 10' when training stops "
        "improving, twice, ending at 1 % of the initial rate (reduce-on-plateau; the paper "
        "states no initial rate or weight decay: 0.1 and 1e-4 here). The paper whitens CIFAR "
        "with ZCA (add --preprocess zca); the models start from a Gaussian of std 0.05"),
    Recipe("mobilenet", "Howard et al. 2017, Sec. 4 (Inception v3's RMSProp)", dict(
        epochs=100, batch_size=96, lr=0.045, optimizer="rmsprop", momentum=0.9,
        rmsprop_alpha=0.9, eps=1.0, weight_decay=4e-5, no_decay_depthwise=True,
        schedule="step", step_size=2, gamma=0.94, augment="scale:1.0-1.3,flip"),
        ("mobilenet*", "shufflenet*"),
        "RMSProp (decay 0.9, ε 1.0, momentum 0.9) as Inception v3, lr 0.045 ×0.94 every 2 "
        "epochs; little weight decay and none on depthwise filters; less augmentation than "
        "large models (torch's RMSprop adds ε outside the square root, TF inside)"),
]}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def list_recipes() -> list[str]:
    return list(RECIPES)


def recipe_for(model_name: str) -> str:
    """The recipe a model trains with when none is named (its paper's, else ``default``)."""
    for r in RECIPES.values():
        if r.name != "default" and any(fnmatch.fnmatchcase(model_name, p) for p in r.models):
            return r.name
    return "default"
