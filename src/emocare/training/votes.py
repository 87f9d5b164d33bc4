"""FER+ votes: what ten annotators said of each FER2013 training face (Barsoum et al. 2016).

Why the votes and not FER2013's labels: FER2013 was labelled once, and the ten FER+
annotators agree with that label on only 68% of the faces they agree among themselves on
(``fer2013_train_ferplus.tsv``'s README). Most of the disagreement is a relaxed face filed as
sad, fearful or angry: a network that learns those labels reads relaxed faces as negative,
and care follows. The votes also say *how* ambiguous a face is (six for neutral, four for
sad), which a single label cannot.

Two readings of the votes, both after FERPlus's own outlier rule (a single vote for an
emotion is dropped as noise):
- ``distribution``: the seven expressions' share of the votes (contempt, unknown and
  not-a-face left out, the rest renormalised): the soft target of training (the FERPlus
  paper's "probability" scheme);
- ``majority``: the expression with more than half of the votes, if it is one of the seven:
  the label FER2013 validation faces are scored against.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..vision.types import EMOTIONS

#: The file beside the labelled faces that holds the votes.
VOTES_FILE = "fer2013_train_ferplus.tsv"
#: The vote columns, in the file's order (``ferplus_votes_NE_HA_SU_SA_AN_DI_FE_CO_UNK_NF``).
COLUMNS = ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear", "contempt", "unknown", "not_face")
#: Where each of EMOTIONS sits among the columns.
OURS = [COLUMNS.index(e) for e in EMOTIONS]
NOT_FACE = COLUMNS.index("not_face")


def read_table(table: Path) -> dict[str, list[int]]:
    """The vote counts of a votes file (``path`` and ``ferplus_votes_…`` columns), by path."""
    by_path = {}
    with Path(table).open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            counts = row["ferplus_votes_NE_HA_SU_SA_AN_DI_FE_CO_UNK_NF"].split("/")
            if len(counts) != len(COLUMNS):
                raise ValueError(f"{table}: {row['path']} has {len(counts)} vote counts, not {len(COLUMNS)}")
            by_path[row["path"]] = [int(c) for c in counts]
    return by_path


def read(data_dir: Path, paths: np.ndarray) -> np.ndarray:
    """The ten vote counts of each path (``source/label/file``); -1 where there are none.

    Images of other sources, and the 137 FER2013 files the votes could not be matched to,
    have none; a folder without the votes file gives none for all.
    """
    votes = np.full((len(paths), len(COLUMNS)), -1, dtype=np.int16)
    table = Path(data_dir) / VOTES_FILE
    if not table.is_file():
        return votes
    by_path = read_table(table)
    for i, path in enumerate(paths):
        found = by_path.get(str(path))
        if found is not None:
            votes[i] = found
    return votes


def majority_by_name(table: Path) -> dict[str, int]:
    """The FER+ majority of each file a votes file names, by file name (-1: no majority).

    By name, not path, so that a folder laid out otherwise (``emocare split``'s links, a
    held-out set) is scored against the same votes.
    """
    by_path = read_table(table)
    names = [Path(p).name for p in by_path]
    found = majority(np.array(list(by_path.values()), dtype=np.int16).reshape(-1, len(COLUMNS)))
    return dict(zip(names, (int(v) for v in found), strict=True))


def _cleaned(votes: np.ndarray) -> np.ndarray:
    """The counts with single votes dropped (FERPlus's outlier rule); rows without votes stay -1."""
    votes = np.asarray(votes, dtype=np.float64)
    return np.where(votes == 1, 0.0, votes)


def _not_a_face(votes: np.ndarray) -> np.ndarray:
    """Faces with votes whose largest count, single votes dropped, is not-a-face."""
    return (np.asarray(votes)[:, 0] >= 0) & (_cleaned(votes).argmax(axis=1) == NOT_FACE)


def distribution(votes: np.ndarray) -> np.ndarray:
    """Soft targets over EMOTIONS (rows sum to 1); NaN where a face has no usable votes.

    Unusable: no votes, not-a-face as the largest count, or no vote left for any of the seven.
    """
    ours = _cleaned(votes)[:, OURS]
    total = ours.sum(axis=1, keepdims=True)
    usable = (np.asarray(votes)[:, 0] >= 0) & (total[:, 0] > 0) & ~_not_a_face(votes)
    out = np.full(ours.shape, np.nan)
    out[usable] = ours[usable] / total[usable]
    return out


def majority(votes: np.ndarray) -> np.ndarray:
    """The FER+ majority as an index into EMOTIONS; -1 where there is none.

    A majority: after dropping single votes, the largest count is more than half of all the
    votes left (contempt, unknown and not-a-face counted too), and it is one of the seven.
    """
    cleaned = _cleaned(votes)
    top = cleaned.argmax(axis=1)
    total = cleaned.sum(axis=1)
    clear = (np.asarray(votes)[:, 0] >= 0) & (cleaned.max(axis=1) * 2 > total)
    to_ours = np.full(len(COLUMNS), -1)
    to_ours[OURS] = np.arange(len(EMOTIONS))
    return np.where(clear, to_ours[top], -1)


def targets(labels: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """Training targets (N×7): the vote distribution where a face has usable votes, else its label.

    Faces most annotators call not-a-face get an all-zero row, which
    ``train.sampling_weights`` never draws.
    """
    soft = distribution(votes)
    out = np.eye(len(EMOTIONS))[labels]
    has = ~np.isnan(soft[:, 0])
    out[has] = soft[has]
    out[_not_a_face(votes)] = 0.0
    return out.astype(np.float32)


def reference_labels(labels: np.ndarray, votes: np.ndarray) -> np.ndarray:
    """The label a face is scored against: the FER+ majority where the votes give one, the
    folder's label where a face has no votes, -1 where it has votes but no majority."""
    has_votes = np.asarray(votes)[:, 0] >= 0
    return np.where(has_votes, majority(votes), labels)
