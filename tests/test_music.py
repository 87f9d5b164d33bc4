"""The music: every bundled clip decodes and lasts what the manifest says; clips are chosen by
the iso principle; a person's own clips are picked up from the instance folder."""

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from emocare.care.content import load
from emocare.care.music import MOOD_POINTS, MusicCatalogue

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "static"
CLIPS = load("music")["clips"]


def probe_duration(path: Path) -> float:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


@pytest.mark.parametrize("clip", CLIPS, ids=[c["id"] for c in CLIPS])
def test_every_clip_decodes_and_has_the_stated_length(clip):
    path = STATIC / "music" / clip["file"]
    assert path.stat().st_size < 1_000_000
    decoded = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-af", "volumedetect", "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert decoded.returncode == 0 and "error" not in decoded.stderr.lower().replace("max_volume", "")
    mean = float(decoded.stderr.split("mean_volume:")[1].split("dB")[0]) if "mean_volume" in decoded.stderr else None
    duration = probe_duration(path)
    assert 20 <= duration <= 90
    assert duration == pytest.approx(clip["duration_s"], abs=0.5)
    if mean is not None:
        assert mean > -45, "the clip is (nearly) silent"


def test_at_least_two_clips_per_category_in_both_languages():
    categories = {}
    for clip in CLIPS:
        categories.setdefault(clip["category"], []).append(clip)
        assert clip["title"]["en"] and clip["title"]["zh-CN"]
    assert {"calming", "comforting", "grounding", "uplifting"} <= set(categories)
    assert all(len(v) >= 2 for v in categories.values())


@pytest.fixture
def catalogue():
    return MusicCatalogue(STATIC)


@pytest.mark.parametrize("emotion", ["sad", "angry", "fear", "disgust"])
def test_iso_principle_starts_near_the_mood_and_moves_toward_calm(catalogue, emotion):
    mood = MOOD_POINTS[emotion]
    for seed in range(10):
        clip = catalogue.pick(emotion, rng=random.Random(seed))
        assert clip is not None
        assert clip.end[0] >= clip.start[0]  # never less pleasant at the end
        if mood[1] > 0.6:  # an aroused mood: the music calms down
            assert clip.end[1] < clip.start[1]
            assert clip.start[1] >= 0.45  # and it starts with some energy, near the mood


def test_targets_pick_their_category_and_recent_clips_are_avoided(catalogue):
    assert catalogue.pick("sad", "comfort").category == "comforting"
    assert catalogue.pick("angry", "calm").category == "calming"
    first = catalogue.pick("sad", "comfort", rng=random.Random(1))
    second = catalogue.pick("sad", "comfort", avoid=[first.id], rng=random.Random(1))
    assert second.id != first.id and second.category == "comforting"


def test_user_clips_from_the_instance_folder(tmp_path, client):
    user = tmp_path / "music"
    user.mkdir()
    shutil.copy(STATIC / "music" / CLIPS[0]["file"], user / "my-song.ogg")
    (user / "manifest.json").write_text(
        json.dumps(
            {
                "version": 1,
                "clips": [
                    {
                        "file": "my-song.ogg",
                        "category": "comforting",
                        "title": "My song",
                        "mood_tags": ["sad"],
                        "start": {"valence": 0.2, "arousal": 0.3},
                        "end": {"valence": 0.6, "arousal": 0.3},
                    },
                    {"file": "../../etc/passwd", "category": "calming"},
                    {"file": "missing.ogg"},
                ],
            }
        )
    )
    catalogue = MusicCatalogue(STATIC, user)
    mine = [c for c in catalogue.clips if c.source == "user"]
    assert [c.url for c in mine] == ["/care/music/my-song.ogg"]  # bad entries skipped
    assert catalogue.user_file("my-song.ogg") == user / "my-song.ogg"
    assert catalogue.user_file("../manifest.json") is None
    assert catalogue.pick("sad", "comfort", weight=lambda i: 5.0 if i == mine[0].id else 1.0).id == mine[0].id


def test_user_music_is_served(tmp_path):
    from .conftest import close_app, make_app

    app = make_app(tmp_path)
    user = Path(app.instance_path) / "music"
    user.mkdir(parents=True)
    shutil.copy(STATIC / "music" / CLIPS[0]["file"], user / "mine.ogg")
    (user / "manifest.json").write_text(json.dumps({"clips": [{"file": "mine.ogg", "title": "Mine"}]}))
    app.extensions["emocare"].care.music.reload()
    with app.test_client().get("/care/music/mine.ogg") as response:
        assert response.status_code == 200 and response.data[:4] == b"OggS"
    close_app(app)
