"""A saved state resumes only the video and the outputs it was saved for (real files, real runs)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import run_cli, tiny_tmpfs


def _run(video: Path, weights: Path, jsonl: Path, state: Path, *extra: str):  # type: ignore[no-untyped-def]
    return run_cli("run", str(video), "--model", str(weights), "--imgsz", "160", "--jsonl", str(jsonl),
                   "--state", str(state), "--quiet", *extra)


def _indices(path: Path) -> list[int]:
    return [json.loads(line)["frame_index"] for line in path.read_text(encoding="utf-8").splitlines()]


def _one_line(done, *words: str) -> str:  # type: ignore[no-untyped-def]
    lines = [line for line in done.stderr.splitlines() if line.startswith("trackstream: error: ")]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def test_a_state_is_never_applied_to_another_video_of_the_same_name(tmp_path, bikes_video, bikes_fast,
                                                                    pose_weights):
    clip, jsonl, state = tmp_path / "clip.mp4", tmp_path / "t.jsonl", tmp_path / "state"
    shutil.copyfile(bikes_video, clip)
    assert _run(clip, pose_weights, jsonl, state, "--max-frames", "6").returncode == 0
    saved = json.loads((state / "clip.json").read_text(encoding="utf-8"))
    assert saved["source"]["size"] == clip.stat().st_size and saved["source"]["sha256_ends"]
    shutil.copyfile(bikes_fast, clip)                      # another video under the same name
    before = jsonl.read_bytes()
    line = _one_line(_run(clip, pose_weights, jsonl, state, "--max-frames", "4"), "another source", "--fresh-state")
    assert line.endswith("content); --fresh-state starts over"), line   # as a settings warning says it
    assert jsonl.read_bytes() == before                    # nothing cut, nothing appended
    done = _run(clip, pose_weights, jsonl, state, "--max-frames", "4", "--fresh-state")
    assert done.returncode == 0, done.stderr
    assert _indices(jsonl) == [0, 1, 2, 3]                 # started over: its first frames are processed


def test_one_replaced_video_of_an_archive_is_started_over_alone_as_the_refusal_says(tmp_path, bikes_video,
                                                                                   bikes_fast, pose_weights):
    """The refusal's advice, --fresh-state, started every other video of the archive over too (and replaced
    their outputs); it names the one snapshot to remove, and following it keeps the others' work."""
    archive, state = tmp_path / "archive", tmp_path / "state"
    archive.mkdir()
    shutil.copyfile(bikes_video, archive / "a.mp4")
    shutil.copyfile(bikes_video, archive / "b.mp4")
    command = ("run", str(archive), "--model", str(pose_weights), "--imgsz", "160", "--vid-stride", "25",
               "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--state", str(state), "--quiet")
    assert run_cli(*command).returncode == 0
    kept = (tmp_path / "out" / "a.jsonl").read_bytes()
    shutil.copyfile(bikes_fast, archive / "b.mp4")          # b recorded again under the same name
    line = _one_line(run_cli(*command), "another source than b", f"remove {state / 'b.json'}", "--overwrite")
    (state / "b.json").unlink()                             # as it says
    done = run_cli(*command, "--overwrite")
    assert done.returncode == 0, done.stderr
    assert "a: already processed to its end" in done.stderr and "--overwrite" in line
    # the words of the settings warning of one source of several (test_resume_settings), from one place
    assert line.endswith(f"; remove {state / 'b.json'} and run with --overwrite to start b over; --fresh-state starts "
                         "every source over"), line
    assert (tmp_path / "out" / "a.jsonl").read_bytes() == kept
    assert _indices(tmp_path / "out" / "b.jsonl") == list(range(0, 250, 25))


def test_a_resume_with_another_output_never_cuts_an_unrelated_file(tmp_path, bikes_video, pose_weights):
    clip, jsonl, state = tmp_path / "clip.mp4", tmp_path / "t.jsonl", tmp_path / "state"
    shutil.copyfile(bikes_video, clip)
    assert _run(clip, pose_weights, jsonl, state, "--max-frames", "6").returncode == 0
    unrelated = tmp_path / "notes.jsonl"
    unrelated.write_text('{"mine": 1}\n' * 10_000, encoding="utf-8")
    before = unrelated.read_bytes()
    _one_line(_run(clip, pose_weights, unrelated, state, "--max-frames", "8"), str(jsonl), str(unrelated),
              "--fresh-state")
    assert unrelated.read_bytes() == before
    done = _run(clip, pose_weights, jsonl, state, "--max-frames", "9")   # the same outputs: resumes
    assert done.returncode == 0, done.stderr
    assert _indices(jsonl) == list(range(6 + 9))


def test_a_state_from_before_fingerprints_resumes_with_a_warning(tmp_path, bikes_video, pose_weights):
    clip, jsonl, state = tmp_path / "clip.mp4", tmp_path / "t.jsonl", tmp_path / "state"
    shutil.copyfile(bikes_video, clip)
    assert _run(clip, pose_weights, jsonl, state, "--max-frames", "5").returncode == 0
    file = state / "clip.json"
    old = json.loads(file.read_text(encoding="utf-8"))
    del old["source"]
    file.write_text(json.dumps(old), encoding="utf-8")
    done = _run(clip, pose_weights, jsonl, state, "--max-frames", "7")
    assert done.returncode == 0, done.stderr
    assert "no source fingerprint" in done.stderr
    assert _indices(jsonl) == list(range(5 + 7))


def test_an_output_added_on_resume_is_refused_rather_than_started_mid_video(tmp_path, bikes_video, pose_weights):
    clip, jsonl, state = tmp_path / "clip.mp4", tmp_path / "t.jsonl", tmp_path / "state"
    shutil.copyfile(bikes_video, clip)
    assert _run(clip, pose_weights, jsonl, state, "--max-frames", "21").returncode == 0
    for flag, name in (("--mot", "t.txt"), ("--events", "e.jsonl"), ("--out", "v.mp4")):
        added = tmp_path / name
        _one_line(_run(clip, pose_weights, jsonl, state, flag, str(added)), flag, str(added), "after frame 20",
                  "--fresh-state")
        assert not added.exists()                          # nothing started mid-video
    assert _indices(jsonl) == list(range(21))              # and the saved run's file is as it was
    done = _run(clip, pose_weights, jsonl, state, "--max-frames", "4")   # the same outputs: resumes
    assert done.returncode == 0, done.stderr
    assert _indices(jsonl) == list(range(25))
    mot = tmp_path / "t.txt"
    fresh = _run(clip, pose_weights, jsonl, state, "--mot", str(mot), "--max-frames", "3", "--fresh-state")
    assert fresh.returncode == 0, fresh.stderr             # the way out: every output from the first frame
    assert _indices(jsonl) == [0, 1, 2] and mot.exists()


def test_a_video_whose_disk_fills_before_its_first_snapshot_stops_alone_and_a_resume_says_why(tmp_path, bikes_video,
                                                                                           pose_weights):
    """The disk of --out filled at the video's first write: flushing the encoder into the failed muxer at the end
    crashed the whole run (SIGSEGV, exit -11, the summary never printed). The same command again then met a
    file the saved run does not continue: it said only 'exists; refusing to replace it (... --overwrite)', as
    of a user's file, and --overwrite led to a second refusal; it now says the saved run does not continue it."""
    full = tmp_path / "full"
    with tiny_tmpfs(full, "4k"):
        clip, jsonl, state, video = tmp_path / "clip.mp4", tmp_path / "t.jsonl", tmp_path / "state", full / "v.mp4"
        shutil.copyfile(bikes_video, clip)
        first = _run(clip, pose_weights, jsonl, state, "--out", str(video), "--max-frames", "60")
        assert first.returncode == 3, first.stderr              # finished; the video alone stopped
        assert "video output of clip stopped: cannot write video output" in first.stderr
        assert "No space left" in first.stderr and _indices(jsonl) == list(range(60))
        _one_line(_run(clip, pose_weights, jsonl, state, "--out", str(video)), str(video), "after frame 59",
                  "--fresh-state")
    mine = tmp_path / "mine.mp4"
    shutil.copyfile(bikes_video, mine)
    _one_line(_run(clip, pose_weights, jsonl, state, "--out", str(mine)), str(mine),
              "exists and the run saved in --state does not continue it",
              "leave --out out to resume, or start over: --fresh-state --overwrite")
    assert mine.read_bytes() == bikes_video.read_bytes() and _indices(jsonl) == list(range(60))   # nothing touched


def test_a_resumed_video_never_replaces_a_file_of_the_users_where_its_next_part_goes(tmp_path, bikes_video,
                                                                                     pose_weights):
    """The resumed video goes on in v.part2.mp4, which no snapshot names: a file the user has there is refused
    like any output path naming their file. One trackstream wrote there (a try of the same resume that was
    killed before a snapshot named it) is written again."""
    clip, jsonl, state, video = tmp_path / "clip.mp4", tmp_path / "t.jsonl", tmp_path / "state", tmp_path / "v.mp4"
    shutil.copyfile(bikes_video, clip)
    assert _run(clip, pose_weights, jsonl, state, "--out", str(video), "--max-frames", "6").returncode == 0
    snapshot = (state / "clip.json").read_bytes()
    part2 = tmp_path / "v.part2.mp4"
    part2.write_text("my notes\n")
    _one_line(_run(clip, pose_weights, jsonl, state, "--out", str(video), "--max-frames", "4"), str(part2),
              "refusing to replace", "--overwrite")
    assert part2.read_text() == "my notes\n" and _indices(jsonl) == list(range(6))
    part2.unlink()
    done = _run(clip, pose_weights, jsonl, state, "--out", str(video), "--max-frames", "4")
    assert done.returncode == 0, done.stderr
    assert part2.stat().st_size > 0
    (state / "clip.json").write_bytes(snapshot)   # as if killed before a snapshot named part 2
    done = _run(clip, pose_weights, jsonl, state, "--out", str(video), "--max-frames", "4")
    assert done.returncode == 0, done.stderr       # trackstream's own part 2: written again
    assert _indices(jsonl) == list(range(10))


def test_a_heatmap_png_added_on_resume_is_written_when_the_saved_run_kept_the_heat(tmp_path, bikes_video,
                                                                                   pose_weights):
    """The heat is part of the snapshot when the saved run accumulated it (--heatmap-half-life, the overlay, the
    web view): a --heatmap PNG added on resume, drawn whole at the end, misses no frame and is not refused. Without
    the saved heat it would start mid-video, and is."""
    clip, jsonl, state, heat = tmp_path / "clip.mp4", tmp_path / "t.jsonl", tmp_path / "state", tmp_path / "h.png"
    shutil.copyfile(bikes_video, clip)
    assert _run(clip, pose_weights, jsonl, state, "--max-frames", "6", "--heatmap-half-life", "300").returncode == 0
    assert json.loads((state / "clip.json").read_text(encoding="utf-8"))["processor"]["heatmap"] is not None
    done = _run(clip, pose_weights, jsonl, state, "--max-frames", "4", "--heatmap-half-life", "300",
                "--heatmap", str(heat))
    assert done.returncode == 0, done.stderr
    assert heat.stat().st_size > 0 and _indices(jsonl) == list(range(10))
    other, state2, heat2 = tmp_path / "o.jsonl", tmp_path / "state2", tmp_path / "h2.png"
    assert _run(clip, pose_weights, other, state2, "--max-frames", "6").returncode == 0   # no heat kept
    _one_line(_run(clip, pose_weights, other, state2, "--heatmap", str(heat2)), "--heatmap", "after frame 5")
    assert not heat2.exists()
