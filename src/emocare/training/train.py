"""Train, calibrate and export EmoCare's expression network (``python -m emocare train``).

The recipe, and why (figures in docs/experiments.md):
- a VGG-style network (four blocks of two 3×3 convolutions with batch norm) on 48×48 grey
  crops: FER2013's own resolution; in bfloat16 about 370 to 650 images/s of training on two CPU
  cores (depending on the CPU's BF16 speed), so one network of 60 epochs takes 45 to 80 minutes;
- trained from scratch, not fine-tuned from fer's weights: fer was trained on FER2013's
  training split, so starting from it would leak our validation images into the model;
- sampling that evens out classes (by the square root of their counts) and gives the small
  posed sources (CK+, JAFFE) more weight, since posed photos are what fer gets most wrong;
- SGD with Nesterov momentum, a one-cycle learning rate, label smoothing, augmentation;
- four members (seeds 2026 to 2029) whose logits are averaged: their mean beats each of them
  (four in one pass are four network passes a face; three with their mirror images were six);
- after training: the members averaged into one ONNX graph, quantised to int8 (three times
  faster, the same accuracy), then, measured on that graph, a per-class bias for balanced
  accuracy and a temperature (``calibrate.py``), with and without flip averaging: the flip is
  kept only if it is worth its double cost (``calibrated_card``). The live path needs only
  onnxruntime.

Every epoch ends with a checkpoint, so a stopped run resumes where it was (``--resume``),
with the same sampling order: the random generators are re-seeded from the seed and epoch.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..vision.emocare_backend import CROP_MARGIN, CROP_SIDE, cpu_flags
from ..vision.metrics import confusion_matrix, softmax, summary
from ..vision.types import EMOTIONS
from . import data as data_module
from . import votes as votes_module
from .augment import augment, resize
from .calibrate import calibrate, care_thresholds

log = logging.getLogger(__name__)

SOURCE_WEIGHT = {"ckplus": 3.0, "jaffe": 3.0}
#: The balanced accuracy flip averaging must add to be worth twice the classifier's time.
FLIP_MIN_GAIN = 0.005


@dataclass
class Recipe:
    side: int = 48
    widths: tuple[int, ...] = (32, 64, 128, 256)
    epochs: int = 60
    batch: int = 128
    max_lr: float = 0.1
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    dropout: float = 0.3
    class_power: float = 0.5
    seed: int = 2026
    #: "bfloat16" runs the training steps under CPU autocast: 2.8 times faster here (CPUs with
    #: AVX-512 BF16), weights and batch norm statistics kept in float32; validation, export and
    #: the live path are float32 / int8 either way. The shipped model was trained so.
    precision: str = "bfloat16"
    #: Share of each batch's face crops (FER2013, CK+) drawn as the live path frames them when
    #: they are shown to a camera (``data.live_crop``) rather than whole: both framings are met,
    #: the first by ``emocare evaluate`` and held-out crops, the second by clips and the page.
    #: 0 in the shipped model's recipe; not yet trained with (docs/experiments.md).
    live_share: float = 0.0
    #: Share of the loss taken from a teacher's scores (``train(teacher=…)``) rather than the
    #: labels: 0 trains on the labels alone, as the networks of an ensemble are trained. A
    #: single network taught by the ensemble learns which faces are ambiguous between which
    #: moods, which one label a face cannot say, and runs in a third of the ensemble's time.
    distil: float = 0.0
    #: The temperature both score sets are softened by before they are compared (Hinton et al.
    #: 2015): above 1, the teacher's second and third choices weigh in too.
    distil_temperature: float = 2.0
    #: What the networks learn from: "labels" (each folder's label, as the first shipped model
    #: did) or "votes" (a FER2013 face's FER+ vote distribution where it has one, the label
    #: elsewhere: ``votes.targets``).
    targets: str = "labels"
    #: Batch norm as a fixed affine map (its statistics frozen, its scale and shift still
    #: learnt): for fine-tuning an exported model, whose batch norm is folded into the
    #: convolutions and has no statistics left to re-estimate (``members_of``).
    frozen_norm: bool = False
    #: Leading convolution blocks whose weights stay as they start (run without gradients):
    #: fine-tuning the last blocks and the classifier costs about half a full step (measured
    #: on an AVX2 CPU without BF16: 2.0 s a batch of 128 against 4.5 s with two of four frozen).
    frozen_blocks: int = 0


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX): Linux's flags only."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def resolve_precision(name: str) -> str:
    """``auto``: the shipped recipe's bfloat16 where the CPU has it, else float32.

    Measured: bfloat16 autocast is 2.8 times faster than float32 on a CPU with AVX-512 BF16,
    and 10 times slower on one without (an AVX2 EPYC: 18 s a batch against 1.8 s), where
    PyTorch emulates it. float32 is a different recipe; the model card records which ran.
    """
    if name != "auto":
        return name
    chosen = "bfloat16" if cpu_has_bf16() else "float32"
    if chosen == "float32":
        log.warning("this CPU has no bfloat16 instructions: training in float32, not the shipped recipe")
    return chosen


#: Layers of one block in ``build_network``: two (convolution, batch norm, ReLU), then a pooling.
LAYERS_PER_BLOCK = 7


def build_network(recipe: Recipe):
    import torch.nn as nn

    layers, channels = [], 1
    for width in recipe.widths:
        for _ in range(2):
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(recipe.dropout), nn.Linear(channels, len(EMOTIONS))]
    return nn.Sequential(*layers)


def normalise(batch: np.ndarray):
    """Grey levels to [-1, 1], as NCHW: the same transform the live path applies."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32) / 127.5 - 1.0)[:, None]


def training_targets(train: data_module.Dataset, recipe: Recipe) -> np.ndarray | None:
    """Soft targets (N×7) under the "votes" recipe; None under "labels" (the labels are the targets)."""
    if recipe.targets == "labels":
        return None
    if recipe.targets != "votes":
        raise ValueError(f"unknown targets {recipe.targets!r} (labels or votes)")
    return votes_module.targets(train.labels, train.votes)


def sampling_weights(train: data_module.Dataset, recipe: Recipe, targets: np.ndarray | None = None) -> np.ndarray:
    """How often each face is drawn: classes evened out by ``class_power``, posed sources weighted.

    With soft targets a face's class is its targets' top; a face with none (most annotators
    saw no face in it) is never drawn.
    """
    labels = train.labels if targets is None else targets.argmax(axis=1)
    counts = np.bincount(labels, minlength=len(EMOTIONS)).astype(float)
    weights = counts[labels] ** (recipe.class_power - 1.0)
    weights *= np.array([SOURCE_WEIGHT.get(str(s), 1.0) for s in train.sources])
    if targets is not None:
        weights[targets.sum(axis=1) == 0] = 0.0
    return weights / weights.sum()


def predict_logits(
    net, images: np.ndarray, side: int, batch: int = 512, tta: bool = True, bfloat16: bool = False
) -> np.ndarray:
    """Logits for crops, averaged with their mirror images when ``tta``."""
    import torch

    net.eval()
    out = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
        for start in range(0, len(images), batch):
            chunk = resize(images[start : start + batch], side)
            logits = net(normalise(chunk))
            if tta:
                logits = (logits + net(normalise(chunk[:, :, ::-1]))) / 2
            out.append(logits.float().numpy())
    return np.concatenate(out).astype(np.float64)


def per_source(probs: np.ndarray, val: data_module.Dataset) -> dict:
    """Validation figures per source, and over all sources, against the folders' labels;
    ``fer2013_ferplus``: the FER2013 faces that ten annotators agree on, against their majority
    (FER2013's own labels cap any model near human agreement, about 65%); and ``reference``:
    every face against what the calibration fits, FER2013 faces by that majority (those with
    none left out), the others by their folder."""

    def figures(truth: np.ndarray, predicted: np.ndarray) -> dict:
        matrix = confusion_matrix(truth, predicted)
        return {**summary(matrix), "confusion": matrix[:, : len(EMOTIONS)].tolist()}

    report = {}
    predicted = probs.argmax(axis=1)
    for source in [*sorted(set(val.sources.tolist())), "all"]:
        mask = np.ones(len(val.labels), bool) if source == "all" else val.sources == source
        report[source] = figures(val.labels[mask], predicted[mask])
    voted = (val.sources == "fer2013_train") & (val.votes[:, 0] >= 0) & (val.reference >= 0)
    if voted.any():
        report["fer2013_ferplus"] = figures(val.reference[voted], predicted[voted])
    scored = val.reference >= 0
    report["reference"] = figures(val.reference[scored], predicted[scored])
    return report


def train(
    data_dir: Path,
    out: Path,
    recipe: Recipe,
    members: int = 1,
    cache: Path | None = None,
    resume: bool = True,
    export: Path | None = None,
    extend: Path | None = None,
    teacher: Path | None = None,
    start: Path | None = None,
) -> dict:
    """Train ``members`` networks (seeds ``seed``, ``seed + 1``, …), then calibrate and export.

    Several members are averaged into one exported graph: networks that differ only in their
    seed make different mistakes, and their mean is measurably better than any one of them.

    ``extend``: an exported model (ONNX with its card) holding the first members of this same
    recipe. Only the members after them are trained, and the exported graph averages both,
    each member weighing the same: an ensemble grows on a slow machine without training again
    what it has, and the members it has stay exactly as they were measured.

    ``teacher``: an exported model whose scores, with ``recipe.distil``, the networks learn
    from beside the labels (``teacher_logits``), to have one network come near the teacher's
    accuracy at a fraction of its cost. Measured with the shipped three as teacher: 1.5 points
    of balanced accuracy under them, so not shipped (docs/experiments.md).

    ``start``: an exported model whose members the networks start from (fine-tuning: member
    k from its member k, ``members_of``), with a recipe of ``frozen_norm`` and a smaller
    learning rate; its card records which model it was.
    """
    import torch

    if (teacher is None) != (recipe.distil == 0):
        raise ValueError("a teacher model and a distil share above 0 go together")
    torch.set_num_threads(2)
    base = None if extend is None else BaseModel.read(extend, recipe)
    first = 0 if base is None else base.members
    if members <= first:
        raise ValueError(f"{extend} holds {first} member(s) already; ask for more members than that")
    out.mkdir(parents=True, exist_ok=True)
    dataset = data_module.load(data_dir, cache or out / "crops.npz")
    train_set, val_set = dataset.subset(~dataset.is_val), dataset.subset(dataset.is_val)
    log.info("train %d images, validation %d", len(train_set.labels), len(val_set.labels))
    # the teacher described before anything is written: the export may replace its file
    taught_by = None if teacher is None else Teacher.read(teacher).summary()
    started_from = None if start is None else Teacher.read(start).summary()
    soft = None if teacher is None else teacher_logits(teacher, train_set.images)
    starts = [None] * members if start is None else members_of(start, recipe)
    if len(starts) < members:
        raise ValueError(f"{start} holds {len(starts)} member(s): fine-tune at most that many")
    nets = [
        train_member(
            train_set, val_set, replace(recipe, seed=recipe.seed + k), out / f"member-{k}", resume, soft, starts[k]
        )
        for k in range(first, members)
    ]
    return finish(nets, recipe, dataset, train_set, val_set, export or out, base, taught_by, started_from)


def teacher_logits(model: Path, crops: np.ndarray) -> np.ndarray:
    """The teacher's logits (flip-averaged, before its calibration) for the training crops.

    Computed once on the crops as they are, not on each augmented copy: its flip average
    does not move under the flip, and a few degrees or pixels barely move it, while running
    the teacher on every batch would more than double the training time (measured here:
    0.5 s for the shipped three on a batch of 128, against 0.3 s for the training step).
    """
    from tqdm import tqdm

    from ..vision.emocare_backend import network_logits, open_session

    session = open_session(model)
    side = int(json.loads(model.with_suffix(".json").read_text(encoding="utf-8"))["input"]["side"])
    chunks = range(0, len(crops), 256)
    return np.concatenate(
        [
            network_logits(session, crops[k : k + 256], side, tta=True)
            for k in tqdm(chunks, desc="teacher", mininterval=10, ascii=True)
        ]
    ).astype(np.float32)


@dataclass(frozen=True)
class Teacher:
    """What a distilled model's card records of its teacher: which file, and how good it was."""

    path: Path
    card: dict

    @classmethod
    def read(cls, model: Path) -> Teacher:
        return cls(model, json.loads(model.with_suffix(".json").read_text(encoding="utf-8")))

    def summary(self) -> dict:
        import hashlib

        return {
            "model": self.path.name,
            "sha256": hashlib.sha256(self.path.read_bytes()).hexdigest(),
            "members": int(self.card["recipe"].get("members", 1)),
            "flip": bool(self.card["input"].get("flip", False)),
            "validation": {s: {k: f[k] for k in ("top1", "balanced", "n")} for s, f in self.card["validation"].items()},
        }


@dataclass(frozen=True)
class BaseModel:
    """An exported model that ``train(extend=…)`` grows: its graph and its card, read once."""

    path: Path
    card: dict

    @property
    def members(self) -> int:
        return int(self.card["recipe"]["members"])

    @classmethod
    def read(cls, model: Path, recipe: Recipe) -> BaseModel:
        """The model, once its card shows it was trained with ``recipe`` (seeds aside): members
        of another recipe would not be what the card says."""
        card = json.loads(model.with_suffix(".json").read_text(encoding="utf-8"))

        def as_read_back(fields: dict) -> dict:  # as JSON gives them back: tuples become lists
            return json.loads(json.dumps(fields))

        theirs, ours, default = card["recipe"], as_read_back(asdict(recipe)), as_read_back(asdict(Recipe()))
        # a field added to the recipe after that model was trained holds its default there
        differing = sorted(k for k in ours if k != "seed" and theirs.get(k, default[k]) != ours[k])
        if differing:
            raise ValueError(f"{model} was trained with another recipe ({', '.join(differing)} differ)")
        return cls(model, card)


def train_member(
    train_set,
    val_set,
    recipe: Recipe,
    out: Path,
    resume: bool = True,
    soft: np.ndarray | None = None,
    start: dict | None = None,
):
    """One network, checkpointed after every epoch into ``out``; resumes from the checkpoint.

    ``soft``: a teacher's logits for each training crop, learnt from with ``recipe.distil``.
    ``start``: the weights it starts from (a state dict, ``members_of``) instead of random ones.
    """
    import torch
    from tqdm import tqdm

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.seed)
    net = build_network(recipe)
    if start is not None:
        net.load_state_dict(start)
    net = net.to(memory_format=torch.channels_last)
    frozen = LAYERS_PER_BLOCK * recipe.frozen_blocks
    for parameter in net[:frozen].parameters():
        parameter.requires_grad_(False)
    optimiser = torch.optim.SGD(
        [p for p in net.parameters() if p.requires_grad],
        lr=recipe.max_lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=recipe.weight_decay,
    )
    steps = len(train_set.labels) // recipe.batch
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=recipe.max_lr, total_steps=steps * recipe.epochs, pct_start=0.2
    )
    checkpoint = out / "checkpoint.pt"
    first_epoch = 0
    if resume and checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        if state["recipe"] != asdict(recipe):
            raise ValueError(f"{checkpoint} was made with another recipe; use --no-resume or another --out")
        net.load_state_dict(state["net"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        first_epoch = state["epoch"] + 1
        log.info("%s: resumed after epoch %d", out.name, first_epoch)

    targets = training_targets(train_set, recipe)
    weights = sampling_weights(train_set, recipe, targets)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    bf16 = recipe.precision == "bfloat16"
    progress = out / "progress.jsonl"
    for epoch in range(first_epoch, recipe.epochs):
        rng = np.random.default_rng([recipe.seed, epoch])
        torch.manual_seed(recipe.seed * 1000 + epoch)
        order = rng.choice(len(weights), size=steps * recipe.batch, p=weights)
        train_mode(net, recipe)
        started, total_loss = time.time(), 0.0
        bar = tqdm(range(steps), desc=f"{out.name} epoch {epoch + 1}/{recipe.epochs}", mininterval=10, ascii=True)
        for step in bar:
            index = order[step * recipe.batch : (step + 1) * recipe.batch]
            crops = train_set.images[index]
            if recipe.live_share > 0:  # drawn only then: the shipped recipe's random stream stays as it was
                framed_live = rng.random(len(index)) < recipe.live_share
                crops = np.where(framed_live[:, None, None], train_set.live[index], crops)
            inputs = normalise(augment(crops, rng, recipe.side))
            inputs = inputs.contiguous(memory_format=torch.channels_last)
            wanted = torch.from_numpy(train_set.labels[index] if targets is None else targets[index])
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                with torch.no_grad():
                    features = net[:frozen](inputs)
                logits = net[frozen:](features)
                loss = loss_fn(logits.float(), wanted)
            if soft is not None:
                taught = distillation_loss(logits.float(), torch.from_numpy(soft[index]), recipe.distil_temperature)
                loss = (1 - recipe.distil) * loss + recipe.distil * taught
            loss.backward()
            optimiser.step()
            schedule.step()
            total_loss += loss.item()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{total_loss / (step + 1):.3f}")
        # a quick look, for the progress log only (the model card measures the exported graph)
        probs = softmax(predict_logits(net, val_set.images, recipe.side, tta=False, bfloat16=bf16))
        figures = per_source(probs, val_set)
        line = {
            "epoch": epoch + 1,
            "loss": round(total_loss / steps, 4),
            "seconds": round(time.time() - started, 1),
            **{s: {"top1": f["top1"], "balanced": f["balanced"]} for s, f in figures.items()},
        }
        if recipe.live_share > 0:  # a second pass over validation, only for a recipe that trains on it
            live_probs = softmax(predict_logits(net, val_set.live, recipe.side, tta=False, bfloat16=bf16))
            line["live"] = {
                s: {"top1": f["top1"], "balanced": f["balanced"]} for s, f in per_source(live_probs, val_set).items()
            }
        with progress.open("a") as handle:
            handle.write(json.dumps(line) + "\n")
        log.info("%s", json.dumps(line))
        torch.save(
            {
                "recipe": asdict(recipe),
                "epoch": epoch,
                "net": net.state_dict(),
                "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(),
            },
            checkpoint.with_suffix(".tmp"),
        )
        checkpoint.with_suffix(".tmp").replace(checkpoint)
    return net


def train_mode(net, recipe: Recipe) -> None:
    """Training mode, but batch norm kept in inference mode under ``frozen_norm``."""
    import torch

    net.train()
    if recipe.frozen_norm:
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()


def distillation_loss(student, teacher, temperature: float):
    """KL divergence of the student's softened scores from the teacher's, times T² so that its
    gradients keep their size whatever the temperature (Hinton et al. 2015)."""
    import torch.nn.functional as F

    return (
        F.kl_div(
            F.log_softmax(student / temperature, dim=1),
            F.log_softmax(teacher / temperature, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        * temperature**2
    )


def finish(
    nets: list,
    recipe: Recipe,
    dataset,
    train_set,
    val_set,
    export: Path,
    base: BaseModel | None = None,
    taught_by: dict | None = None,
    started_from: dict | None = None,
) -> dict:
    """Average the members, export ONNX (int8), calibrate on validation and write the model card.

    With ``base``, the new members' int8 graph is averaged with that model's graph as it is.
    ``taught_by``: the teacher's summary (``Teacher.summary``), for a distilled model's card;
    ``started_from``: the same of the model a fine-tuned one started from.
    """
    member_logits = [predict_logits(net, val_set.images, recipe.side) for net in nets]
    members_float = [per_source(softmax(m), val_set) for m in member_logits]
    first = 0 if base is None else base.members
    total = first + len(nets)
    export.mkdir(parents=True, exist_ok=True)
    onnx_path = export / "emocare_expression.onnx"
    with tempfile.TemporaryDirectory() as scratch:
        float_path = Path(scratch) / "float32.onnx"
        export_onnx(nets, recipe, float_path)
        if base is None:
            quantise(float_path, onnx_path, train_set.images, recipe.side)
        else:
            new_path = Path(scratch) / "new-members.onnx"
            quantise(float_path, new_path, train_set.images, recipe.side)
            combine_graphs([(base.path, first / total), (new_path, len(nets) / total)], onnx_path)
    card: dict = {"recipe": {**asdict(recipe), "members": total}}
    if taught_by is not None:
        card["distilled_from"] = taught_by
    if started_from is not None:
        card["fine_tuned_from"] = started_from
    if base is None:
        card["validation_members_float"] = members_float
        card["validation_float"] = per_source(softmax(np.mean(member_logits, axis=0)), val_set)
    else:  # the float figures of the members it had come from its card
        card["validation_members_float"] = base.card.get("validation_members_float", []) + members_float
        card["extended_from"] = {"members": first, **{k: base.card[k] for k in ("validation", "validation_raw")}}
    card.update(calibrated_card(onnx_path, recipe.side, dataset, train_set, val_set))
    (export / "emocare_expression.json").write_text(json.dumps(card, indent=1) + "\n")
    log.info("wrote %s and its model card", onnx_path)
    return card


def recalibrate(model: Path, data_dir: Path, cache: Path | None = None) -> dict:
    """Fit the calibration, the flip choice and the care thresholds again on an exported model,
    without training: for when that code changes. The training fields of its card are kept."""
    dataset = data_module.load(data_dir, cache)
    train_set, val_set = dataset.subset(~dataset.is_val), dataset.subset(dataset.is_val)
    card_path = model.with_suffix(".json")
    old = json.loads(card_path.read_text(encoding="utf-8"))
    card = {**old, **calibrated_card(model, int(old["input"]["side"]), dataset, train_set, val_set)}
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    log.info("calibrated %s again", model)
    return card


def calibrated_card(onnx_path: Path, side: int, dataset, train_set, val_set) -> dict:
    """The model card's inference part, measured on what ships: the int8 graph, through the
    live preprocessing, with and without flip averaging.

    Flip averaging doubles the classifier's work; it is kept only if it adds at least
    ``FLIP_MIN_GAIN`` of balanced accuracy once each variant has its own calibration, every
    face scored against what the calibration fits (FER2013 faces against their FER+ majority):
    scored against FER2013's own labels, which the annotators dispute on a third of the faces,
    it chose flip averaging for a model it did not help (docs/experiments.md).
    """
    from ..vision.emocare_backend import network_logits, open_session

    session = open_session(onnx_path)
    # FER2013 faces count by their FER+ majority, and those without one are left out
    known = train_set.reference[train_set.reference >= 0]
    prior = np.bincount(known, minlength=len(EMOTIONS)) / len(known)
    truth = val_set.reference
    scored = truth >= 0
    truth = truth[scored]
    groups = np.where(val_set.sources == "fer2013_train", "fer2013", "photos")[scored]

    def logits_of(crops: np.ndarray, flip: bool) -> np.ndarray:
        return np.concatenate(
            [network_logits(session, crops[k : k + 256], side, tta=flip) for k in range(0, len(crops), 256)]
        )

    variants = {}
    for flip in (False, True):
        logits = logits_of(val_set.images, flip)
        calibration = calibrate(logits[scored], truth, groups, prior)
        calibrated = softmax((logits + np.array(calibration["bias"])) / calibration["temperature"])
        calibration["relaxed_mean_log"] = relaxed_mean_log(calibrated, val_set)
        variants[flip] = (logits, calibration, calibrated, per_source(calibrated, val_set))
    gain = variants[True][3]["reference"]["balanced"] - variants[False][3]["reference"]["balanced"]
    flip = bool(gain >= FLIP_MIN_GAIN)
    logits, calibration, calibrated, figures = variants[flip]
    live = softmax((logits_of(val_set.live, flip) + np.array(calibration["bias"])) / calibration["temperature"])
    return {
        "model": onnx_path.name,
        "labels": list(EMOTIONS),
        "input": {
            "side": side,
            "crop_side": CROP_SIDE,
            "margin": CROP_MARGIN,
            "channels": 1,
            "scale": "x / 127.5 - 1",
            "layout": "NCHW",
            "flip": flip,
        },
        "data": {
            "sources": {
                str(s): {
                    "train": int((train_set.sources == s).sum()),
                    "validation": int((val_set.sources == s).sum()),
                }
                for s in sorted(set(dataset.sources.tolist()))
            },
            "split": f"{data_module.VALIDATION_SHARE:.0%} of each source's subjects (CK+, JAFFE, muxspace) "
            "or pixel-hash groups (FER2013), by SHA-256 of the key",
        },
        "flip_choice": {
            "balanced_without_flip": variants[False][3]["reference"]["balanced"],
            "balanced_with_flip": variants[True][3]["reference"]["balanced"],
            "min_gain": FLIP_MIN_GAIN,
            "chosen": flip,
            "validation_other": variants[not flip][3],
            # the other way of running, calibrated for itself: EMOCARE_TTA picks it
            "calibration_other": variants[not flip][1],
            "care_other": {"thresholds": care_thresholds(variants[not flip][2][scored], truth)},
        },
        "calibration": calibration,
        "care": {"thresholds": care_thresholds(calibrated[scored], truth)},
        "validation_raw": per_source(softmax(logits), val_set),
        "validation": figures,
        # the face crops (FER2013, CK+) as the live path frames them when shown to a camera
        "validation_live": per_source(live, val_set),
        "validation_fer": per_source(fer_probabilities(val_set.images), val_set),
    }


def relaxed_mean_log(probs: np.ndarray, val_set) -> list[float]:
    """The population's relaxed face: mean log-scores of validation photos labelled neutral.

    Photos (JAFFE, muxspace), not FER2013 crops: a person calibrates in front of a camera,
    whose frames look like photos, and the offset of their face from this mean is what the
    live path takes off (``vision.reference``).
    """
    from ..vision.reference import log_scores

    relaxed = (val_set.sources != "fer2013_train") & (val_set.labels == EMOTIONS.index("neutral"))
    if not relaxed.any():  # a set without neutral photos: all relaxed faces
        relaxed = val_set.reference == EMOTIONS.index("neutral")
    if not relaxed.any():
        return [float(np.log(1 / len(EMOTIONS)))] * len(EMOTIONS)
    return [round(float(v), 5) for v in log_scores(probs[relaxed]).mean(axis=0)]


def fer_probabilities(crops: np.ndarray) -> np.ndarray:
    """fer's bundled model on the same crops (flip-averaged), for the model card's comparison."""
    from ..vision.fer_backend import FerClassifier

    classifier = FerClassifier(tta=True)
    return np.stack([classifier.classify_crop(crop) for crop in crops])


def quantise(source: Path, target: Path, train_crops: np.ndarray, side: int) -> None:
    """Static int8 quantisation (weights per channel), calibrated on 256 fixed training crops.

    Measured here: three times faster than float32 on one core, the same validation accuracy
    to a tenth of a point (docs/experiments.md).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    from .augment import resize

    chosen = train_crops[:: max(1, len(train_crops) // 256)][:256]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([{"face": normalise(resize(c[None], side)).numpy()} for c in chosen])

        def get_next(self):
            return next(self._batches, None)

    quantize_static(
        str(source),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
    )


def combine_graphs(parts: list[tuple[Path, float]], target: Path) -> None:
    """One ONNX graph whose logits are the weighted sum of the ``parts``' logits.

    Each part is an exported graph with the same input (``face``) and logits as its output; its
    nodes and weights are copied unchanged under a prefix of their own, so onnxruntime runs
    each part as it ran alone (its int8 kernels included), then the weighted sum.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.compose import add_prefix

    models = [onnx.load(str(path)) for path, _weight in parts]
    face = models[0].graph.input[0]
    nodes, initializers, value_info, weighted, opsets = [], [], [], [], {}
    for k, (model, (path, weight)) in enumerate(zip(models, parts, strict=True)):
        if [i.name for i in model.graph.input] != [face.name] or len(model.graph.output) != 1:
            raise ValueError(f"{path}: one input named {face.name!r} and one output expected")
        graph = add_prefix(model, f"part{k}/", rename_inputs=False).graph
        factor = numpy_helper.from_array(np.array(weight, dtype=np.float32), f"part{k}/share")
        nodes += [*graph.node, helper.make_node("Mul", [graph.output[0].name, factor.name], [f"part{k}/weighted"])]
        initializers += [*graph.initializer, factor]
        value_info += graph.value_info
        weighted.append(f"part{k}/weighted")
        for opset in model.opset_import:
            opsets[opset.domain] = max(opsets.get(opset.domain, 0), opset.version)
    nodes.append(helper.make_node("Sum", weighted, ["logits"]))
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(EMOTIONS)])
    graph = helper.make_graph(nodes, "emocare_expression", [face], [logits], initializers, value_info=value_info)
    combined = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], producer_name="emocare.train"
    )
    combined.ir_version = max(m.ir_version for m in models)
    onnx.checker.check_model(combined)
    onnx.save(combined, str(target))


def members_of(model: Path, recipe: Recipe) -> list[dict]:
    """The float weights of each member of an exported model, as ``build_network`` state dicts.

    The int8 weights are dequantised (per channel, as onnxruntime does), so each network
    starts where the shipped one ran. Export folded each batch norm into the convolution
    before it: the batch norm comes back as an identity map (mean 0, variance 1 - eps, scale 1)
    whose shift is the convolution's bias, for ``recipe.frozen_norm`` fine-tuning.
    """
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(model)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in tensors:
            quantised, scale = tensors[node.input[0]].astype(np.float32), tensors[node.input[1]]
            zero = tensors[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.zeros_like(scale)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [-1 if d == axis else 1 for d in range(quantised.ndim)] if scale.ndim else []
            tensors[node.output[0]] = (quantised - zero.reshape(shape)) * scale.reshape(shape)
    members: dict[str, list] = {}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm"):
            member = node.name.rsplit("/members.", 1)[0] + "/" + node.name.split("/members.")[1].split("/")[0]
            members.setdefault(member, []).append(node)
    eps = build_network(recipe)[1].eps
    states = []
    for nodes in members.values():
        state = build_network(recipe).state_dict()
        for node in nodes:
            index = int(node.name.rsplit("/", 2)[-2].rsplit(".", 1)[1])
            weight, bias = tensors[node.input[1]], tensors[node.input[2]]
            state[f"{index}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
            if node.op_type == "Gemm":
                state[f"{index}.bias"] = torch.from_numpy(np.asarray(bias, dtype=np.float32))
                continue
            channels = weight.shape[0]
            state[f"{index + 1}.weight"] = torch.ones(channels)
            state[f"{index + 1}.bias"] = torch.from_numpy(np.asarray(bias, dtype=np.float32))
            state[f"{index + 1}.running_mean"] = torch.zeros(channels)
            state[f"{index + 1}.running_var"] = torch.full((channels,), 1.0 - eps)
        states.append(state)
    if not states:
        raise ValueError(f"{model}: no member networks found")
    return states


def export_onnx(nets: list, recipe: Recipe, path: Path) -> None:
    """One ONNX graph whose output is the mean of the members' logits."""
    import torch

    class Mean(torch.nn.Module):
        def __init__(self, members):
            super().__init__()
            self.members = torch.nn.ModuleList(members)

        def forward(self, x):
            return torch.stack([m(x) for m in self.members]).mean(0)

    model = Mean([net.eval().to(memory_format=torch.contiguous_format) for net in nets]).eval()
    example = torch.zeros(1, 1, recipe.side, recipe.side)
    # the TorchScript exporter, deprecated but complete for a plain CNN; the new one needs
    # onnxscript on top, for the same graph
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["face"],
            output_names=["logits"],
            dynamic_axes={"face": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
