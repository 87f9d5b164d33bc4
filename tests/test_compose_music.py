"""The music composer without FluidSynth: its data files load, every piece still composes to
exactly the MIDI the script made before the pieces moved out of the code (so the rendered
clips stay byte for byte what they were), the data agrees with the committed manifest, and a
malformed data file is refused with its name instead of quietly changing the music."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "compose_music.py"
MANIFEST = ROOT / "src" / "emocare" / "care" / "content" / "music.json"

#: sha256 of each piece's Standard MIDI File (the last step before FluidSynth), recorded from
#: scripts/compose_music.py as it was when the pieces were still Python literals in it (the
#: version that made the committed clips). FluidSynth and ffmpeg turn the same MIDI into the
#: same bytes, so a piece whose digest changes is a clip that would sound different.
MIDI_SHA256 = {
    "comforting-1": "82fa58e2e63cc6ba283882039a0e6d470f9a72d4f4397f4f264dba482f10d119",
    "comforting-2": "08530d57be5e1ca2e9bf126d750f8b4c00ccae01028d0c08d3cf90646fc49953",
    "comforting-3": "5257573da86082805261e953f02c2788e24e3a0936a01d5e5e2f361d1dd78072",
    "calming-1": "8df7459b532199ba5cc668f9eeb72726bf5376068306885b9e7d732cc5007ebd",
    "calming-2": "96a41c469d007f82abb6e9f50d7118334774d0fb324795580c27016e5d72cc57",
    "calming-3": "19cacb1d2f3bd7af8d367d43d4c8ab4c5903c7feeb9dec6125925abadabfacf4",
    "grounding-1": "6211646d1be651142f08190a113f577001de8a3568942a2ff12cf219ac27fd7e",
    "grounding-2": "d54a148cc5a27ebe90baa83e2307e82c9ce34b94cacd60d2c80ee750b27957bc",
    "uplifting-1": "c9fcdd5bcc8377e6d62bd0559e99f5b2975f2d34f2e89347f52bdf954dd804cf",
    "uplifting-2": "4c38e2601e060a3183a672f5a9b80bcb14f7b135dbddb52299c807fbd5799fc3",
}


def _import_script():
    """scripts/ is not a package: import the script by path, as its own module."""
    spec = importlib.util.spec_from_file_location("compose_music", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


cm = _import_script()


def midi_of(piece: dict) -> bytes:
    score, tracks = cm.compose(piece)
    data, _ = cm.midi_bytes(piece, score, tracks)
    return data


def test_the_catalogue_lists_every_recorded_piece_in_the_manifest_order():
    ids = [p["id"] for p in cm.PIECES]
    assert ids == list(MIDI_SHA256)
    assert ids == [clip["id"] for clip in json.loads(MANIFEST.read_text(encoding="utf-8"))["clips"]]


@pytest.mark.parametrize("piece_id", list(MIDI_SHA256))
def test_every_piece_composes_to_the_midi_the_clips_were_rendered_from(piece_id):
    piece = next(p for p in cm.PIECES if p["id"] == piece_id)
    data = midi_of(piece)
    assert data[:4] == b"MThd"
    assert hashlib.sha256(data).hexdigest() == MIDI_SHA256[piece_id]
    # and again from a fresh load: nothing in composing depends on state left by an earlier run
    again = cm.load_pieces()
    assert midi_of(next(p for p in again if p["id"] == piece_id)) == data


def test_the_data_gives_the_committed_manifest():
    """Everything in music.json except the measured duration comes from the piece files."""
    committed = json.loads(MANIFEST.read_text(encoding="utf-8"))["clips"]
    for piece, clip in zip(cm.PIECES, committed, strict=True):
        assert cm.manifest_entry(piece, clip["duration_s"]) == clip


def test_pitches_are_note_names_in_the_files_and_midi_numbers_for_the_composer():
    raw = json.loads((cm.DATA_DIR / "pieces" / "comforting-1.json").read_text(encoding="utf-8"))
    assert raw["tracks"][0]["range"] == ["A2", "E5"]
    assert cm.PIECES[0]["tracks"][0]["range"] == [45, 76]
    assert cm.PIECES[0]["tracks"][3]["center"] == [[0, 55], [8, 60]]


def test_a_changed_note_changes_the_midi():
    """The digests above can fail: one different chord is a different file."""
    piece = json.loads(json.dumps(cm.PIECES[0]))
    piece["sections"][0]["bars"][1] = "iv"
    assert hashlib.sha256(midi_of(piece)).hexdigest() != MIDI_SHA256[piece["id"]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A copy of scripts/music/ to spoil."""
    copy = tmp_path / "music"
    shutil.copytree(cm.DATA_DIR, copy)
    return copy


def edit(path: Path, change) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def test_the_copy_loads_like_the_original(data_dir):
    assert cm.load_pieces(data_dir) == cm.PIECES


def test_a_misspelt_track_option_is_refused_with_the_file_name(data_dir):
    def misspell(piece):
        piece["tracks"][2]["ramp-in"] = piece["tracks"][2].pop("ramp_in")

    edit(data_dir / "pieces" / "calming-2.json", misspell)
    with pytest.raises(cm.DataError, match=r"calming-2\.json: track 3: unknown keys \['ramp-in'\]"):
        cm.load_pieces(data_dir)


def test_a_bad_note_name_is_refused(data_dir):
    edit(data_dir / "pieces" / "grounding-1.json", lambda p: p["tracks"][0].update(range=["H2", "A2"]))
    with pytest.raises(cm.DataError, match=r"grounding-1\.json: track 1: bad note name 'H2'"):
        cm.load_pieces(data_dir)


def test_a_piece_the_catalogue_does_not_list_is_refused(data_dir):
    shutil.copy(data_dir / "pieces" / "calming-1.json", data_dir / "pieces" / "calming-4.json")
    with pytest.raises(cm.DataError, match=r"does not list calming-4\.json"):
        cm.load_pieces(data_dir)


def test_a_rhythm_that_does_not_fill_its_bar_is_refused(data_dir):
    edit(data_dir / "vocabulary.json", lambda v: v["rhythms"]["3"]["medium"].append([1, 1]))
    with pytest.raises(cm.DataError, match=r"rhythms\[3\]\[medium\] \[1, 1\] does not fill a bar of 3"):
        cm.load_vocabulary(data_dir)
