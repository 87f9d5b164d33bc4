"""The shared labelled faces: read, crop as the live path crops, de-duplicate, split.

Why each step:
- *Crops.* Images up to ``CROP_MAX_SIDE`` px (FER2013, CK+) are already face crops and are
  used whole, as ``emocare evaluate`` does; larger photos (JAFFE, muxspace) go through the
  live detector and ``square_crop``, so the model learns the framing it will see at run time.
- *Live crops.* A face crop shown to the camera is framed by the detector, not by whoever cut
  the crop: measured on FER2013 validation crops in a 320×240 frame, the live crop's side was
  0.80 to 1.32 times the original's (10th to 90th percentile), off centre by 8% of it, with
  edge pixels repeated where it reaches past the crop, and the shipped model lost 5 points of
  top-1 there. So each crop also gets its *live* variant, made as a steady clip's frame is
  (``camera_frame``, the live detector, ``model_crop``), and training draws from both.
- *Duplicates.* The set holds 846 groups of pixel-identical images; a group must land on one
  side of the split, or validation measures memory.
- *Split by subject* where the source names subjects (CK+ ``S005_…``, JAFFE ``KA.…``,
  muxspace ``George_W_Bush_0001``): consecutive CK+ frames of one person are near copies.
  FER2013 names no subjects, so its images are split by their pixel hash.

The split is a pure function of file names and pixels (no RNG state), so it is the same on
every machine and every run.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..vision.emocare_backend import model_crop, to_crop_side
from ..vision.samples import camera_frame
from ..vision.types import CROP_MAX_SIDE, EMOTIONS
from . import votes as votes_module

log = logging.getLogger(__name__)

#: Share of each source's subjects (or hash groups) kept for validation.
VALIDATION_SHARE = 0.15
DEFAULT_DATA = Path("../shared/datasets/expressions")
#: The frame a face crop is shown in for its live variant: as ``evaluation.steady_clip`` does.
LIVE_FRAME = (320, 240)


@dataclass
class Dataset:
    """Crops (N×64×64 uint8), labels (index into EMOTIONS), source names and the split."""

    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    paths: np.ndarray
    is_val: np.ndarray
    #: how the crop was made: "crop" (used whole), "face" (detected), "whole" (no face found)
    framing: np.ndarray
    #: the crop as the live path makes it when the image is shown to a camera (``live_crop``)
    live: np.ndarray
    #: the ten FER+ vote counts of FER2013 faces (``votes.COLUMNS``), -1 for other images:
    #: read from the votes file at each load, never cached with the crops
    votes: np.ndarray

    def subset(self, mask: np.ndarray) -> Dataset:
        return Dataset(*(getattr(self, name)[mask] for name in self.__dataclass_fields__))

    @property
    def reference(self) -> np.ndarray:
        """The label each face is scored against: the FER+ majority for FER2013 faces with votes
        (-1 where ten annotators reach none), the folder's label for the others."""
        return votes_module.reference_labels(self.labels, self.votes)


#: What the crops cache keeps: everything but the votes, which come from their own file.
CROP_FIELDS = ("images", "labels", "sources", "paths", "is_val", "framing", "live")


def subject_of(source: str, filename: str) -> str | None:
    """The person an image shows, where the source says so in its file names."""
    stem = Path(filename).stem
    if source == "ckplus":
        return stem.split("_")[0]
    if source == "jaffe":
        return stem.split(".")[0]
    if source == "muxspace":
        return re.sub(r"_?\d+$", "", stem) or stem
    return None


def _bucket(key: str) -> float:
    """A stable number in [0, 1) for a key: the split's only source of "randomness"."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def crop_face(image: np.ndarray, detector) -> tuple[np.ndarray, str]:
    """The grey 64×64 crop the live classifier would see, and how it was made."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if max(gray.shape[:2]) <= CROP_MAX_SIDE:
        return to_crop_side(gray), "crop"
    colour = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    boxes = detector.detect(colour, gray)
    if boxes:
        return model_crop(gray, max(boxes, key=lambda b: b[2] * b[3])), "face"
    side = min(gray.shape[:2])
    y, x = (gray.shape[0] - side) // 2, (gray.shape[1] - side) // 2
    return to_crop_side(gray[y : y + side, x : x + side]), "whole"


def live_crop(image: np.ndarray, crop: np.ndarray, framing: str, detector) -> np.ndarray:
    """What the live path crops of a face crop held up to the camera; ``crop`` itself for
    photos (already framed by the detector) and where the detector finds no face."""
    if framing != "crop":
        return crop
    frame = camera_frame(image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), LIVE_FRAME)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    boxes = detector.detect(frame, gray)
    return model_crop(gray, max(boxes, key=lambda b: b[2] * b[3])) if boxes else crop


def load(data_dir: Path, cache: Path | None = None) -> Dataset:
    """Every image of ``data_dir/<source>/<label>/``, cropped, de-duplicated and split.

    ``cache`` (an .npz) keeps the crops between runs: detection of the larger photos takes a
    minute, and the crops depend only on the data and this code.
    """
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as saved:
            if set(CROP_FIELDS) <= set(saved.files):
                log.info("crops read from %s", cache)
                cached = {name: saved[name] for name in CROP_FIELDS}
                return Dataset(**cached, votes=votes_module.read(data_dir, cached["paths"]))
        log.info("%s was made by an older version: cropping again", cache)
    from ..vision import build_detector

    paths, labels, sources, is_val = index(data_dir)
    detector = build_detector("blazeface")
    images, framing, live = [], [], []
    for path in paths:
        image = cv2.imread(str(data_dir / path), cv2.IMREAD_COLOR)
        crop, how = crop_face(image, detector)
        images.append(crop)
        framing.append(how)
        live.append(live_crop(image, crop, how, detector))
    dataset = Dataset(
        images=np.stack(images),
        labels=labels,
        sources=sources,
        paths=paths,
        is_val=is_val,
        framing=np.array(framing),
        live=np.stack(live),
        votes=votes_module.read(data_dir, paths),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, **{name: getattr(dataset, name) for name in CROP_FIELDS})
    return dataset


def index(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Paths (``source/label/file``), label indices, sources and the validation mask.

    Cheap (no face detection): the tests use it to check their sample comes from validation.
    """
    rows = []
    for source_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
        for label_index, label in enumerate(EMOTIONS):
            folder = source_dir / label
            if folder.is_dir():
                rows += [
                    (f"{source_dir.name}/{label}/{p.name}", label_index, source_dir.name)
                    for p in sorted(folder.iterdir())
                ]
    hashes, kept = [], []
    for row in rows:
        pixels = cv2.imread(str(data_dir / row[0]), cv2.IMREAD_GRAYSCALE)
        if pixels is None:
            log.warning("skipped unreadable %s", row[0])
            continue
        hashes.append(hashlib.sha1(pixels.tobytes()).hexdigest())
        kept.append(row)
    if not kept:
        raise FileNotFoundError(f"no images in {data_dir}/<source>/<label>/ (labels: {', '.join(EMOTIONS)})")
    paths = np.array([r[0] for r in kept])
    sources = np.array([r[2] for r in kept])
    return paths, np.array([r[1] for r in kept], dtype=np.int64), sources, split(paths, sources, hashes)


def split(paths: np.ndarray, sources: np.ndarray, pixel_hashes: list[str]) -> np.ndarray:
    """True where an image belongs to validation.

    Images with identical pixels share one group whatever their source; a group with a
    named subject goes by the subject, so every image of a person and every copy of an image
    lands on one side.
    """
    group_of: dict[str, str] = {}
    keys = []
    for path, source, pixel_hash in zip(paths, sources, pixel_hashes, strict=True):
        subject = subject_of(str(source), str(path).rsplit("/", 1)[-1])
        key = f"{source}:{subject}" if subject else f"{source}:px:{pixel_hash}"
        # the first key seen for a pixel group decides for all its copies
        keys.append(group_of.setdefault(pixel_hash, key))
    # per source, the VALIDATION_SHARE of its groups with the lowest hash: JAFFE's 10 posers
    # still give 2 to validation, where a plain threshold could give none
    chosen: set[str] = set()
    by_source: dict[str, set[str]] = {}
    for key in keys:
        by_source.setdefault(key.split(":", 1)[0], set()).add(key)
    for groups in by_source.values():
        ranked = sorted(groups, key=_bucket)
        chosen.update(ranked[: max(1, round(len(ranked) * VALIDATION_SHARE))])
    return np.array([key in chosen for key in keys])


def write_split(data_dir: Path, out: Path, side: str = "validation") -> dict[str, int]:
    """Link one side of the split into ``out/<source>/<label>/`` and ``out/all/<label>/``.

    Links, not copies: the images stay in the shared folder, under their licences; the
    folders are what ``emocare evaluate`` reads.
    """
    paths, _labels, _sources, is_val = index(data_dir)
    counts: dict[str, int] = {}
    for path in paths[is_val if side == "validation" else ~is_val]:
        source, label, name = str(path).split("/")
        target = (data_dir / path).resolve()
        for folder, filename in ((out / source / label, name), (out / "all" / label, f"{source}-{name}")):
            folder.mkdir(parents=True, exist_ok=True)
            link = folder / filename
            if not link.is_symlink():
                link.symlink_to(target)
        counts[source] = counts.get(source, 0) + 1
    return counts


#: Sources of posed or studio photos, where fer's model is weakest (docs/model-card.md).
PHOTO_SOURCES = ("ckplus", "jaffe", "muxspace")


def fixed_sample(
    paths: np.ndarray,
    labels: np.ndarray,
    sources: np.ndarray,
    is_val: np.ndarray,
    per_class: int = 20,
    photos: int = 12,
) -> list[tuple[str, str]]:
    """A small labelled sample of validation, the same on every machine: (label, path) rows.

    Per class, up to ``photos`` images from the photo sources (in turn, by hash of the path),
    the rest from FER2013. Used by the tests, which assert per-class floors on it.
    """
    rows = []
    for label_index, label in enumerate(EMOTIONS):
        pools = {
            source: sorted(
                (str(p) for p in paths[is_val & (labels == label_index) & (sources == source)]),
                key=_bucket,
            )
            for source in (*PHOTO_SOURCES, "fer2013_train")
        }
        chosen: list[str] = []
        while len(chosen) < photos and any(pools[s] for s in PHOTO_SOURCES):
            for source in PHOTO_SOURCES:
                if pools[source] and len(chosen) < photos:
                    chosen.append(pools[source].pop(0))
        chosen += pools["fer2013_train"][: per_class - len(chosen)]
        rows += [(label, path) for path in chosen]
    return rows
