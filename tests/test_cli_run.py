"""`trackstream run` / `trackstream demo` as a user runs them: flags, graceful stop, errors inside stages."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import pytest

from tests.conftest import REPO, free_port, run_cli

pytestmark = pytest.mark.slow

CONTRACT_FLAGS = ("--source", "--model", "--config", "--out", "--jsonl", "--mot", "--vid-stride", "--max-fps",
                  "--imgsz", "--conf", "--classes", "--device", "--batch", "--max-frames", "--no-boxes",
                  "--no-labels", "--no-trails", "--no-path", "--no-masks", "--no-keypoints", "--realtime",
                  "--jsonl-rotate-bytes", "--jsonl-rotate-seconds", "--redis", "--source-id",
                  "--metrics-port", "--quiet")


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_help_lists_every_flag():
    proc = run_cli("run", "--help")
    assert proc.returncode == 0
    missing = [flag for flag in CONTRACT_FLAGS if flag not in proc.stdout]
    assert missing == []


def test_stride_and_max_fps_pick_frames_by_timestamp(tmp_path, bikes_video, pose_weights):
    out = tmp_path / "picked.jsonl"
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160",
                   "--vid-stride", "5", "--max-fps", "2", "--max-frames", "6", "--jsonl", str(out),
                   "--source-id", "street", "--quiet")
    assert proc.returncode == 0, proc.stderr
    recs = records(out)
    assert len(recs) == 6 and all(r["frame_index"] % 5 == 0 and r["source_id"] == "street" for r in recs)
    gaps = [b["pts"] - a["pts"] for a, b in zip(recs, recs[1:])]
    assert all(0.4 - 1e-6 <= g <= 0.6 + 1e-6 for g in gaps)   # 2 per second of video, on 5 fps input


def test_max_frames_counts_the_frames_stride_keeps_and_each_resumed_run_takes_that_many_more(
        tmp_path, bikes_video, pose_weights):
    """--help said 'after reading N frames': with --vid-stride 5 a user expected N decoded frames (N/5 results)."""
    help_text = " ".join(run_cli("run", "--help", env={"COLUMNS": "1000"}).stdout.split())
    assert "--max-frames N stop each source after N frames, counted after --vid-stride" in help_text
    out, state = tmp_path / "t.jsonl", tmp_path / "state"
    for _ in range(2):
        done = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--vid-stride", "5",
                       "--max-frames", "3", "--jsonl", str(out), "--state", str(state), "--quiet")
        assert done.returncode == 0, done.stderr
    assert [r["frame_index"] for r in records(out)] == [0, 5, 10, 15, 20, 25]
    # the summary's frames are this run's, its tracks the whole video's: it says so, and the total
    assert "bikes: 3 frames" in done.stderr and "resumed after 3 frames: 6 in all" in done.stderr


def test_sigint_stops_gracefully_and_keeps_what_was_processed(tmp_path, bikes_video, pose_weights):
    video, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.cli", "run", str(bikes_video), "--model", str(pose_weights),
         "--imgsz", "160", "--out", str(video), "--jsonl", str(jsonl), "--quiet"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 5):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr                 # a requested stop with every output flushed
    assert "Traceback" not in stderr and "stopping" in stderr
    recs = records(jsonl)                               # every line is complete JSON
    assert 5 <= len(recs) < 250
    assert [r["frame_index"] for r in recs] == list(range(len(recs)))
    assert frames_in(video) == len(recs)                # the video was finalised and plays
    # the summary says the file was not processed to its end (it read like a finished run)
    assert f"bikes: {len(recs)} frames" in stderr
    assert f"stopped after {len(recs)} of the 250 frames this run was to process" in stderr


@pytest.mark.parametrize("module", ["numpy", "yaml"])
def test_ctrl_c_while_the_commands_load_is_one_line_not_a_traceback(tmp_path, bikes_video, module):
    """Ctrl-C in the first second, while ``trackstream`` imports numpy (the tracker package) and its commands
    (PyYAML, ...), printed a 30-line KeyboardInterrupt traceback. The SIGINT is real; a ``sitecustomize``
    sends it to the process as ``module`` starts importing, so it lands in that window on a machine of any
    speed."""
    proc = run_cli("run", str(bikes_video), "--jsonl", str(tmp_path / "t.jsonl"),
                   env=_interrupt_on_import(tmp_path / "hook", module))
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr, proc.stderr
    assert proc.returncode == 130 and proc.stderr.strip() == "trackstream: error: interrupted"
    assert not (tmp_path / "t.jsonl").exists()


def test_error_inside_a_sink_stops_the_run_with_one_line(tmp_path, bikes_video, pose_weights):
    """/dev/full accepts the open and fails the writes (a real disk-full error, no mock)."""
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full not available")
    video = tmp_path / "out.mp4"
    proc = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160",
                   "--max-frames", "40",
                   "--jsonl", "/dev/full", "--out", str(video), "--quiet")
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("trackstream: error: ")]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert len(errors) == 1 and "No space left" in errors[0], proc.stderr
    assert frames_in(video) >= 1                        # the other sink was still closed properly


@pytest.mark.parametrize("flag", ["--jsonl", "--mot", "--events"])
def test_a_line_output_to_dev_stdout_reaches_a_pipe(tmp_path, bikes_video, pose_weights, flag):
    """`trackstream run v.mp4 --jsonl /dev/stdout | jq`: stdout is a pipe, which cannot seek."""
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(bikes_video), "--model",
                           str(pose_weights), "--imgsz", "320", "--max-frames", "40", "--quiet", flag, "/dev/stdout"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(tmp_path))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    if flag == "--mot":
        assert lines and all(len(line.split(",")) == 10 for line in lines)   # the cyclist is tracked by frame 40
    else:
        records = [json.loads(line) for line in lines]
        assert len(records) == 40 if flag == "--jsonl" else records[-1]["event"] == "stream_ended"
    assert "wrote /dev/stdout" in proc.stderr and list(tmp_path.iterdir()) == []


def test_a_pipe_reader_that_goes_away_stops_the_run_quietly_as_ctrl_c_does(tmp_path, bikes_video, pose_weights):
    """`trackstream run v.mp4 --jsonl /dev/stdout | head -n 3`: the run went on to the clip's end with its only
    output gone, logged an ERROR and exited 3. A real pipe, closed after three lines; --realtime plays the clip
    at its own 25 fps (10 s), so a run that goes on is told from one that stops."""
    events = tmp_path / "events.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(bikes_video), "--model",
                             str(pose_weights), "--imgsz", "160", "--realtime", "--quiet", "--jsonl", "/dev/stdout",
                             "--events", str(events)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(tmp_path))
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()                                 # the reader goes away, as `head -n 3` does
    closed = time.monotonic()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert time.monotonic() - closed < 5, stderr        # not after the clip's 10 s
    assert [json.loads(line)["frame_index"] for line in lines] == [0, 1, 2]
    assert "Traceback" not in stderr and "ERROR" not in stderr and "Exception ignored" not in stderr, stderr
    assert "trackstream: error" not in stderr and stderr.count("the reader of /dev/stdout") == 1, stderr
    done = int(re.search(r"^bikes: (\d+) frames", stderr, re.M).group(1))   # the summary
    assert f"stopped after {done} of the 250 frames" in stderr and done < 200
    last = json.loads(events.read_text().splitlines()[-1])  # the other output got every processed frame
    assert last["event"] == "stream_ended" and last["detail"]["stopped"] and last["frame_index"] == done - 1


def test_a_rotating_line_output_refuses_a_pipe_in_one_line(tmp_path, bikes_video, pose_weights):
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(bikes_video), "--model",
                           str(pose_weights), "--max-frames", "5", "--quiet", "--jsonl", "/dev/stdout",
                           "--jsonl-rotate-bytes", "1MB"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "trackstream: error: --jsonl of source bikes: /dev/stdout is a pipe or device, which cannot be rotated "
        "(--jsonl-rotate-* needs a file)")
    assert proc.stdout == ""   # refused before any output was opened
    # /dev/stdout not renamed aside as the previous run's segment (rotation once left stdout-<time>.jsonl there)
    assert [p.name for p in Path("/dev").iterdir() if p.name.startswith("stdout")] == ["stdout"]


def test_demo_writes_video_and_jsonl_and_says_where(tmp_path):
    out_dir = tmp_path / "demo"
    proc = run_cli("demo", "--out-dir", str(out_dir), "--max-frames", "5", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert frames_in(out_dir / "bikes_tracked.mp4") == 5 and len(records(out_dir / "bikes.jsonl")) == 5
    assert str(out_dir.resolve()) in proc.stderr


def test_demo_replaces_only_what_it_wrote_into_a_folder_named_with_out_dir(tmp_path):
    mine = tmp_path / "bikes.jsonl"       # a run of the user's own: trackstream run bikes.mp4 --jsonl bikes.jsonl
    mine.write_text('{"mine": true}\n')
    proc = run_cli("demo", "--out-dir", str(tmp_path), "--max-frames", "2", "--quiet", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (f"trackstream: error: --out-dir {tmp_path}: bikes.jsonl exists and "
                                                    "was not written by trackstream demo; refusing to replace it "
                                                    "(choose another --out-dir)")
    assert mine.read_text() == '{"mine": true}\n'
    out_dir = tmp_path / "demo"                        # the demo's own: running it again replaces its files
    for frames in ("2", "3"):
        proc = run_cli("demo", "--out-dir", str(out_dir), "--max-frames", frames, "--quiet", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert len(records(out_dir / "bikes.jsonl")) == 3


def test_two_sources_get_their_own_tracker_and_files(tmp_path, bikes_video, pose_weights):
    other = tmp_path / "other.mp4"
    other.write_bytes(bikes_video.read_bytes())
    proc = run_cli("run", str(bikes_video), "--source", str(other), "--model", str(pose_weights),
                   "--imgsz", "160", "--max-frames", "12", "--jsonl", str(tmp_path / "out" / "{source}.jsonl"),
                   "--quiet")
    assert proc.returncode == 0, proc.stderr
    a, b = records(tmp_path / "out" / "bikes.jsonl"), records(tmp_path / "out" / "other.jsonl")
    assert [r["frame_index"] for r in a] == [r["frame_index"] for r in b] == list(range(12))
    assert {r["source_id"] for r in a} == {"bikes"} and {r["source_id"] for r in b} == {"other"}
    strip = [{k: v for k, v in r.items() if k != "source_id"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "source_id"} for r in b]  # same input, same tracks


def test_a_glob_over_files_named_in_other_scripts_writes_one_file_each(tmp_path, bikes_video, pose_weights):
    for name in ("日本", "中文"):
        (tmp_path / "archive").mkdir(exist_ok=True)
        (tmp_path / "archive" / f"{name}.mp4").write_bytes(bikes_video.read_bytes())
    proc = run_cli("run", str(tmp_path / "archive" / "*.mp4"), "--model", str(pose_weights), "--imgsz", "160",
                   "--max-frames", "3", "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    for name in ("日本", "中文"):
        assert [r["source_id"] for r in records(tmp_path / "out" / f"{name}.jsonl")] == [name] * 3


def test_a_folder_of_videos_leaves_out_hidden_files_as_a_glob_does(tmp_path, bikes_video, pose_weights):
    """A folder copied from a Mac holds ``._clip.mp4`` (AppleDouble metadata, not a video) beside each clip; a
    glob leaves it out, so the folder must too (it stopped the whole run, blamed on the ids of both)."""
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "clip.mp4").write_bytes(bikes_video.read_bytes())
    (archive / "._clip.mp4").write_bytes(b"\x00\x05\x16\x07" + bytes(200))
    proc = run_cli("run", str(archive), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "2",
                   "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip.jsonl"]


def test_the_same_command_writing_into_the_folder_it_reads_runs_twice(tmp_path, bikes_video, pose_weights):
    """``--out 'archive/{source}_tracked.mp4'``: the rerun took the first run's annotated video for a new
    input (clip_tracked), whose own output is that video, and refused to start."""
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "clip.mp4").write_bytes(bikes_video.read_bytes())
    command = ("run", str(archive), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "3",
               "--out", str(archive / "{source}_tracked.mp4"), "--jsonl", str(archive / "{source}.jsonl"),
               "--overwrite", "--quiet")
    first = run_cli(*command)
    assert first.returncode == 0, first.stderr
    second = run_cli(*command)
    assert second.returncode == 0, second.stderr
    assert "clip_tracked.mp4" in second.stderr and "leaving out" in second.stderr
    assert sorted(p.name for p in archive.iterdir() if not p.name.startswith(".")) == [
        "clip.jsonl", "clip.mp4", "clip_tracked.mp4"]
    assert frames_in(archive / "clip_tracked.mp4") == 3
    assert [r["source_id"] for r in records(archive / "clip.jsonl")] == ["clip"] * 3


def test_a_file_named_again_beside_its_folder_is_processed_once(tmp_path, bikes_video, pose_weights):
    """``run archive archive/clip.mp4`` (or two overlapping globs) made two sources of one file, refused as 'two
    sources get the id clip ... give them ids'."""
    archive = tmp_path / "archive"
    archive.mkdir()
    (archive / "clip.mp4").write_bytes(bikes_video.read_bytes())
    proc = run_cli("run", str(archive), str(archive / "clip.mp4"), str(archive / "*.mp4"), "--model",
                   str(pose_weights), "--imgsz", "160", "--max-frames", "2",
                   "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("given more than once") == 2
    assert [r["source_id"] for r in records(tmp_path / "out" / "clip.jsonl")] == ["clip"] * 2


def test_a_folder_holding_only_annotated_videos_says_so_rather_than_that_it_holds_no_video(tmp_path, bikes_video,
                                                                                          pose_weights):
    done = run_cli("run", str(bikes_video), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "2",
                   "--out", str(tmp_path / "tracked" / "bikes.mp4"), "--quiet")
    assert done.returncode == 0, done.stderr
    for source in (str(tmp_path / "tracked"), str(tmp_path / "tracked" / "*.mp4")):
        proc = run_cli("run", source, "--jsonl", str(tmp_path / "t.jsonl"))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "annotated video trackstream wrote" in proc.stderr.splitlines()[-1], proc.stderr
    named = run_cli("run", str(tmp_path / "tracked" / "bikes.mp4"), "--model", str(pose_weights), "--imgsz", "160",
                    "--max-frames", "2", "--jsonl", str(tmp_path / "t.jsonl"), "--quiet")
    assert named.returncode == 0, named.stderr                     # named as a SOURCE: tracked as asked


def test_a_glob_over_day_folders_tells_same_named_files_apart_by_their_folders(tmp_path, bikes_video,
                                                                               pose_weights):
    """``'archive/**/*.mp4'`` over day folders each holding gate.mp4 (how recorders lay out their days) was
    refused, both files getting the id 'gate', unless the user wrote a config with ids for every file. Their
    ids are their paths under the glob's folder, so a year added later changes none already given (the
    fewest folders that tell them apart would turn 12-01_gate into 2026_12-01_gate, and its --state and
    outputs would start over)."""
    def run(out: str) -> list[str]:
        proc = run_cli("run", str(tmp_path / "archive" / "**" / "*.mp4"), "--model", str(pose_weights), "--imgsz",
                       "160", "--max-frames", "2", "--jsonl", str(tmp_path / out / "{source}.jsonl"), "--quiet")
        assert proc.returncode == 0, proc.stderr
        return sorted(p.name for p in (tmp_path / out).iterdir())

    for day in ("2026/12-01", "2026/12-02"):
        (tmp_path / "archive" / day).mkdir(parents=True)
        (tmp_path / "archive" / day / "gate.mp4").write_bytes(bikes_video.read_bytes())
    (tmp_path / "archive" / "yard.mp4").write_bytes(bikes_video.read_bytes())   # no clash: keeps its stem
    assert run("first") == ["2026_12-01_gate.jsonl", "2026_12-02_gate.jsonl", "yard.jsonl"]
    assert [r["source_id"] for r in records(tmp_path / "first" / "2026_12-02_gate.jsonl")] == ["2026_12-02_gate"] * 2
    (tmp_path / "archive" / "2027" / "12-01").mkdir(parents=True)
    (tmp_path / "archive" / "2027" / "12-01" / "gate.mp4").write_bytes(bikes_video.read_bytes())
    assert run("later") == ["2026_12-01_gate.jsonl", "2026_12-02_gate.jsonl", "2027_12-01_gate.jsonl", "yard.jsonl"]


def test_same_named_files_named_one_by_one_get_their_folders_names(tmp_path, bikes_video, pose_weights):
    for day in ("2026-12-01", "2026-12-02"):
        (tmp_path / day).mkdir()
        (tmp_path / day / "gate.mp4").write_bytes(bikes_video.read_bytes())
    proc = run_cli("run", str(tmp_path / "2026-12-01" / "gate.mp4"), str(tmp_path / "2026-12-02" / "gate.mp4"),
                   "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "2",
                   "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["2026-12-01_gate.jsonl", "2026-12-02_gate.jsonl"]


def test_two_cameras_whose_ids_clash_are_refused_naming_both_without_their_passwords(tmp_path):
    proc = run_cli("run", "rtsp://ann:s3cret-a@127.0.0.1:9/live", "rtsp://bob:s3cret-b@127.0.0.1:9/live",
                   "--jsonl", str(tmp_path / "{source}.jsonl"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "two sources get the id '127.0.0.1:9/live'" in line and line.count("rtsp://") == 2, line
    assert "s3cret" not in proc.stderr


def test_a_folder_whose_videos_are_in_subfolders_says_they_are_not_searched(tmp_path, bikes_video):
    (tmp_path / "archive" / "2026-12-01").mkdir(parents=True)
    (tmp_path / "archive" / "2026-12-01" / "gate.mp4").write_bytes(bikes_video.read_bytes())
    proc = run_cli("run", str(tmp_path / "archive"), "--jsonl", str(tmp_path / "out.jsonl"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "subfolders are not searched" in proc.stderr and "**" in proc.stderr


def test_a_folder_with_videos_and_day_subfolders_names_the_subfolders_it_leaves_out(tmp_path, bikes_video,
                                                                                     pose_weights):
    """README's 'trackstream run archive/ ...' on an archive with loose clips beside its day folders tracked the
    loose clips and left the day folders out without a word."""
    archive = tmp_path / "archive"
    for day in ("2026-12-01", "2026-12-02"):
        (archive / day).mkdir(parents=True)
        (archive / day / "gate.mp4").write_bytes(bikes_video.read_bytes())
    (archive / "loose.mp4").write_bytes(bikes_video.read_bytes())
    (archive / "notes").mkdir()   # no video in it: not named
    (archive / "notes" / "todo.txt").write_text("x")
    out = tmp_path / "out"
    proc = run_cli("run", str(archive), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "2",
                   "--jsonl", str(out / "{source}.jsonl"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["loose.jsonl"]
    warned = [line for line in proc.stderr.splitlines() if "WARNING" in line]
    assert len(warned) == 1, proc.stderr
    assert warned[0].endswith(f"{archive}: the videos in its subfolders 2026-12-01, 2026-12-02 are not tracked (a "
                              "folder stands for the videos directly in it); to track them too, give a quoted glob: "
                              f"'{archive / '**' / '*.mp4'}'"), warned[0]


def test_realtime_on_a_file_plays_it_like_a_camera_and_drops_what_it_cannot_keep_up_with(
        tmp_path, bikes_fast, pose_weights):
    """200 frames of 250 fps video (0.8 s), released at their own pace, into a detector slower than 250
    frames/s (any CPU)."""
    out = tmp_path / "rt.jsonl"
    started = time.monotonic()
    proc = run_cli("run", str(bikes_fast), "--model", str(pose_weights), "--realtime", "--max-frames", "200",
                   "--jsonl", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - started >= 0.8           # frames were not read faster than they play
    recs = records(out)
    index = [r["frame_index"] for r in recs]
    assert 0 < len(index) < 200 and index == sorted(set(index)) and index[-1] >= 180
    assert "dropped" in proc.stderr


def test_quiet_hides_model_loading_lines_and_two_workers_print_them_once(tmp_path, bikes_video):
    from tests.conftest import shared_data

    onnx = shared_data("weights/yolov8n_int8_640.onnx")
    base = ("run", str(bikes_video), "--model", str(onnx), "--imgsz", "160", "--max-frames", "4", "--workers", "2",
            "--jsonl", str(tmp_path / "q.jsonl"), "--overwrite")   # the second run replaces the first's file
    loud = run_cli(*base)
    quiet = run_cli(*base, "--quiet")
    assert loud.returncode == 0 and quiet.returncode == 0, (loud.stderr, quiet.stderr)
    assert (loud.stdout + loud.stderr).count("for ONNX Runtime inference") == 1   # not once per model copy
    assert "ONNX Runtime" not in quiet.stdout + quiet.stderr and "Loading" not in quiet.stdout + quiet.stderr
    assert "bikes: 4 frames" in quiet.stderr                          # the summary still shows
    assert " on cpu: 2 workers" in quiet.stderr                       # trackstream's own note of what runs
    help_text = " ".join(run_cli("run", "--help", env={"COLUMNS": "1000"}).stdout.split())
    said = help_text[help_text.rindex("--quiet"):]
    assert "which runtime and device run the model" in said and "still show" in said   # --help says it stays


def _archive_with_unreadable_files(archive: Path, bikes: Path) -> dict[str, str]:
    """Two readable clips and, beside them, the unreadable files a real archive holds (made for real): file
    name -> what its warning line says."""
    from tests.test_bad_input import make_audio_only

    archive.mkdir(parents=True)
    for name in ("a.mp4", "b.mp4"):
        (archive / name).write_bytes(bikes.read_bytes())
    (archive / "zero.mp4").write_bytes(b"")
    make_audio_only(archive / "audio.mp4")
    (archive / "cut.mp4").write_bytes(bikes.read_bytes()[: bikes.stat().st_size * 2 // 5])
    (archive / "notes.mp4").write_text("not a video\n" * 50)
    return {"audio.mp4": "no video stream (audio-only", "cut.mp4": "cannot read video file",
            "notes.mp4": "cannot read video file", "zero.mp4": "empty (0 bytes)"}


def test_unreadable_files_of_a_folder_are_skipped_and_the_readable_ones_processed(tmp_path, bikes_video,
                                                                                 pose_weights):
    """One bad file in an archive (zero bytes, audio only, cut short, not a video) stopped the whole run at
    start with exit 2: now each is named with its reason, the rest is processed, and the exit code says so."""
    archive = tmp_path / "archive"
    bad = _archive_with_unreadable_files(archive, bikes_video)
    proc = run_cli("run", str(archive), "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "3",
                   "--jsonl", str(tmp_path / "out" / "{source}.jsonl"),
                   "--out", str(tmp_path / "out" / "{source}_tracked.mp4"), "--quiet")
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr and "trackstream: error" not in proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jsonl", "a_tracked.mp4", "b.jsonl",
                                                                    "b_tracked.mp4"]
    for name in ("a", "b"):
        assert [r["frame_index"] for r in records(tmp_path / "out" / f"{name}.jsonl")] == [0, 1, 2]
        assert frames_in(tmp_path / "out" / f"{name}_tracked.mp4") == 3
    for name, reason in bad.items():
        lines = [line for line in proc.stderr.splitlines() if f"skipping {archive / name}: " in line]
        assert len(lines) == 1 and reason in lines[0] and lines[0].count(str(archive)) == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("skipped 4 of 6 files") and all(str(archive / name) in last for name in bad), last


def test_a_rerun_with_state_after_the_bad_files_are_repaired_or_removed_processes_them_once(
        tmp_path, bikes_video, pose_weights):
    """``'days/**/*.mp4'`` with an MP4 a recorder is still writing (no index yet) and an empty file: the first
    run skips both; once the recording is finished and the empty file removed, the same command with --state
    processes the recording, and the clip already done is neither done again nor refused. Of two files one is
    left: its output keeps the ``_<id>`` a run of both gives it, so the rerun writes and resumes the same file."""
    days = tmp_path / "days"
    (days / "2026-12-01").mkdir(parents=True)
    (days / "2026-12-02").mkdir()
    (days / "2026-12-01" / "a.mp4").write_bytes(bikes_video.read_bytes())
    data = bikes_video.read_bytes()
    recording = days / "2026-12-02" / "recording.mp4"
    recording.write_bytes(data[: data.rindex(b"moov") - 4])   # bikes.mp4 ends in its index: not written yet
    (days / "2026-12-02" / "zero.mp4").write_bytes(b"")
    command = ("run", str(days / "**" / "*.mp4"), "--model", str(pose_weights), "--imgsz", "160",
               "--vid-stride", "25", "--jsonl", str(tmp_path / "out" / "t.jsonl"),
               "--state", str(tmp_path / "state"), "--quiet")
    first = run_cli(*command)
    assert first.returncode == 4, first.stderr
    assert f"skipping {recording}: cannot read video file" in first.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t_a.jsonl"]
    done = (tmp_path / "out" / "t_a.jsonl").read_text()
    assert [r["frame_index"] for r in records(tmp_path / "out" / "t_a.jsonl")] == list(range(0, 250, 25))

    recording.write_bytes(data)                       # the recorder finished it
    (days / "2026-12-02" / "zero.mp4").unlink()       # the empty file removed
    second = run_cli(*command)
    assert second.returncode == 0, second.stderr
    assert "skipping" not in second.stderr and "skipped" not in second.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t_a.jsonl", "t_recording.jsonl"]
    assert [r["frame_index"] for r in records(tmp_path / "out" / "t_recording.jsonl")] == list(range(0, 250, 25))
    assert (tmp_path / "out" / "t_a.jsonl").read_text() == done



def _interrupt_on_import(folder: Path, module: str) -> dict[str, str]:
    """An environment in which the run gets a real SIGINT as it starts importing ``module`` (a
    ``sitecustomize``): a Ctrl-C that lands at one moment on a machine of any speed."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        "import os, signal, sys\n"
        "class _Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {module!r}:\n"
        "            sys.meta_path.remove(self)\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _Interrupt())\n", encoding="utf-8")
    return {"PYTHONPATH": f"{folder}{os.pathsep}{REPO}"}


@pytest.mark.parametrize("failure", ["camera gives up", "named file unreadable", "ctrl-c while starting"])
def test_the_skipped_files_are_named_however_the_run_ends(tmp_path, bikes_video, pose_weights, failure):
    """The line naming the files a folder skipped was printed only when the run succeeded or lost data: a run
    that failed for another reason, or was interrupted, never said that some files were not processed. Now it
    comes before the failure's own line, which stays the last, with the failure's exit code. The failures are
    real: a camera named beside the folder refuses the connection and the run gives up on it after the file
    was processed; a file named on its own is empty; SIGINT while the model is being loaded."""
    archive = tmp_path / "archive"
    bad = _archive_with_unreadable_files(archive, bikes_video)
    (archive / "b.mp4").unlink()
    config = tmp_path / "c.yaml"
    config.write_text("source: {reconnect_max_attempts: 1, reconnect_initial_delay: 0.1, open_timeout: 2}\n")
    env = None
    sources = [str(archive)]
    if failure == "camera gives up":
        sources.append(f"rtsp://127.0.0.1:{free_port()}/cam")   # nothing listens there: connection refused
    elif failure == "named file unreadable":
        sources.append(str(archive / "zero.mp4"))
    else:
        env = _interrupt_on_import(tmp_path / "hook", "pipelines.detection.detector")
    proc = run_cli("run", *sources, "--model", str(pose_weights), "--imgsz", "160", "--max-frames", "3",
                   "--config", str(config), "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--quiet",
                   env=env)
    assert "Traceback" not in proc.stderr, proc.stderr
    *_, skipped_line, error = proc.stderr.strip().splitlines()
    named = sorted(bad) if failure != "named file unreadable" else sorted(set(bad) - {"zero.mp4"})
    assert skipped_line.startswith(f"skipped {len(named)} of {len(named) + 1 + (failure == 'named file unreadable')}"
                                   " files, which cannot be read"), proc.stderr
    assert sorted(Path(p).name for p in skipped_line.split(": ", 1)[1].split(", ")) == named, skipped_line
    assert [line for line in proc.stderr.splitlines() if line.startswith("skipped ")] == [skipped_line]
    if failure == "camera gives up":
        assert proc.returncode == 2 and error.startswith("trackstream: error: source ") and "gave up" in error
        assert [r["frame_index"] for r in records(tmp_path / "out" / "a.jsonl")] == [0, 1, 2]
    elif failure == "named file unreadable":
        assert (proc.returncode, error) == (2, f"trackstream: error: video file is empty (0 bytes): "
                                               f"{archive / 'zero.mp4'}"), proc.stderr
    else:
        assert (proc.returncode, error) == (130, "trackstream: error: interrupted"), proc.stderr


def _to_mpegts(video: Path, ts: Path) -> bytes:
    """``video`` encoded again as MPEG-TS (H.264 at 25 fps, as a recorder writes a camera's stream): ``ts``'s
    bytes."""
    with av.open(str(video)) as src, av.open(str(ts), "w", format="mpegts") as out:
        given = src.streams.video[0]
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = given.width, given.height, "yuv420p"
        for index, frame in enumerate(src.decode(video=0)):
            frame.pts, frame.time_base = index, Fraction(1, 25)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return ts.read_bytes()


def test_a_recording_still_being_written_is_said_so_and_a_rerun_with_state_processes_the_rest_once(
        tmp_path, bikes_video, pose_weights):
    """A recorder appending to an MPEG-TS file: the run read it to its current end and reported it like any
    finished file, and the same command with --state run again once the recording was finished refused it as
    another video (its size and last bytes had changed), so the rest was never processed. Now one warning
    names the file and the frames processed so far, and the rerun processes the rest: the outputs of both
    runs equal those of one run over the finished recording, every frame once. The recorder is real: the
    test appends the next TS packets every 50 ms while the first run reads (it catches up with them), and
    the rest once that run has ended; the rerun starts right after, so the finished file is still fresh."""
    data = _to_mpegts(bikes_video, tmp_path / "bikes.ts")
    whole, recordings, out, state = (tmp_path / name for name in ("whole", "recordings", "out", "state"))
    whole.mkdir()
    recordings.mkdir()
    (whole / "cam.ts").write_bytes(data)
    old = time.time() - 3600
    os.utime(whole / "cam.ts", (old, old))   # recorded an hour ago

    def command(folder: Path, to: Path) -> list[str]:
        return ["run", str(folder), "--model", str(pose_weights), "--imgsz", "160", "--jsonl", str(to / "t.jsonl"),
                "--events", str(to / "e.jsonl"), "--quiet"]

    unbroken = run_cli(*command(whole, tmp_path / "unbroken"))
    assert unbroken.returncode == 0 and "is still being written (" not in unbroken.stderr, unbroken.stderr
    recording = recordings / "cam.ts"
    written = len(data) * 2 // 5 // 188 * 188
    recording.write_bytes(data[:written])
    first = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *command(recordings, out), "--state", str(state)],
                             env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO), stderr=subprocess.PIPE,
                             text=True)
    with open(recording, "ab") as recorder:
        while first.poll() is None and written < len(data) * 9 // 10:
            recorder.write(data[written:written + 2 * 188])
            recorder.flush()
            written += 2 * 188
            time.sleep(0.05)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0 and "Traceback" not in stderr, stderr
    done = len(records(out / "t.jsonl"))
    assert 0 < done < 250 and written < len(data), (done, written)
    warnings = [line for line in stderr.splitlines() if "is still being written (" in line]
    assert len(warnings) == 1 and str(recording) in warnings[0] and f"processed {done} frames" in warnings[0] \
        and "processes the rest" in warnings[0], stderr

    with open(recording, "ab") as recorder:   # the recorder finishes the file
        recorder.write(data[written:])
    second = run_cli(*command(recordings, out), "--state", str(state))
    assert second.returncode == 0 and "is still being written (" not in second.stderr, second.stderr
    assert f"resumed after {done} frames: 250 in all" in second.stderr, second.stderr
    assert [r["frame_index"] for r in records(out / "t.jsonl")] == list(range(250))
    assert records(out / "t.jsonl") == records(tmp_path / "unbroken" / "t.jsonl")
    from tests.test_resume import without_times

    events = without_times(records(out / "e.jsonl"))
    assert events == without_times(records(tmp_path / "unbroken" / "e.jsonl"))
    assert [e["event"] for e in events].count("stream_ended") == 1 and events[-1]["detail"]["growing"] is False

def test_a_bad_file_named_on_its_own_or_a_folder_with_no_readable_file_still_stops_the_run(tmp_path, bikes_video,
                                                                                          pose_weights):
    """Skipping is for what a folder or glob found: a file the user named stops the run as before (one line, exit
    2, nothing written), so does a folder none of whose files can be read; and the output guard still refuses an
    existing output of a file that is processed."""
    archive = tmp_path / "archive"
    bad = _archive_with_unreadable_files(archive, bikes_video)
    out = tmp_path / "out" / "{source}.jsonl"
    for sources in ([str(bikes_video), str(archive / "zero.mp4")], [str(archive), str(archive / "zero.mp4")]):
        proc = run_cli("run", *sources, "--model", str(pose_weights), "--max-frames", "1", "--jsonl", str(out))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == \
            f"trackstream: error: video file is empty (0 bytes): {archive / 'zero.mp4'}", proc.stderr
        assert not any((tmp_path / "out").glob("*"))   # the folder preflight made may stay, empty

    for name in ("a.mp4", "b.mp4"):
        (archive / name).unlink()
    proc = run_cli("run", str(archive / "*.mp4"), "--model", str(pose_weights), "--max-frames", "1",
                   "--jsonl", str(out))
    assert proc.returncode == 2 and "skipping" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"trackstream: error: no video stream in {archive / 'audio.mp4'}") and \
        "and 3 other files cannot be read either" in last and all(str(archive / n) in last for n in bad), last
    assert not any((tmp_path / "out").glob("*"))

    (archive / "a.mp4").write_bytes(bikes_video.read_bytes())
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "out" / "a.jsonl").write_text("the user's own file\n")
    proc = run_cli("run", str(archive), "--model", str(pose_weights), "--max-frames", "1", "--jsonl", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(tmp_path / "out" / "a.jsonl") in proc.stderr.strip().splitlines()[-1], proc.stderr
    assert (tmp_path / "out" / "a.jsonl").read_text() == "the user's own file\n"


def _tiny_archive(folder: Path, count: int) -> None:
    """``count`` hard links of one 5-frame 64x64 H.264 clip (``c1.mp4`` ...)."""
    import av
    import numpy as np

    folder.mkdir()
    first = folder / "c1.mp4"
    with av.open(str(first), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 40 * i, np.uint8), format="bgr24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    for i in range(2, count + 1):
        os.link(first, folder / f"c{i}.mp4")


def _with_open_files(soft: int, hard: int | None = None) -> Callable[[], None]:
    def limit() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard or resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    return limit


def test_an_archive_of_more_files_than_the_soft_open_file_limit_is_processed(tmp_path, pose_weights):
    """Each file of a glob was opened at start with its outputs: 300 files under a soft limit of 128 open files
    (1024 is common) stopped with 'Too many open files' where the system (the hard limit) allows far more. (Files
    now run a few at a time, and an archive past the hard limit runs too: tests/test_archive_waves.py.)"""
    _tiny_archive(tmp_path / "archive", 300)
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", str(tmp_path / "archive" / "*.mp4"),
                           "--model", str(pose_weights), "--imgsz", "64", "--max-frames", "1",
                           "--jsonl", str(tmp_path / "out" / "{source}.jsonl"), "--quiet"],
                          capture_output=True, text=True, timeout=600, preexec_fn=_with_open_files(128),
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(list((tmp_path / "out").iterdir())) == 300


def test_python_dash_m_pipelines_runs_the_command_line(bikes_video, pose_weights, tmp_path):
    """Without the entry point on PATH (a checkout on PYTHONPATH, a venv not activated) 'python -m pipelines' was
    'No module named pipelines.__main__'."""
    out = tmp_path / "o.jsonl"
    done = subprocess.run([sys.executable, "-m", "pipelines", "run", str(bikes_video), "--model", str(pose_weights),
                           "--imgsz", "160", "--max-frames", "2", "--jsonl", str(out), "--quiet"], capture_output=True,
                          text=True, timeout=180, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) == 2
    usage = subprocess.run([sys.executable, "-m", "pipelines", "--bogus"], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert usage.returncode == 2 and usage.stderr.startswith("usage: trackstream [-h]"), usage.stderr


def test_an_architecture_yaml_as_the_model_is_run_with_a_warning_that_it_finds_nothing(bikes_video, tmp_path):
    """'--model yolo11n.yaml' (the name of the weights mistyped) built random weights: every output empty, exit 0,
    and nothing said why."""
    out = tmp_path / "o.jsonl"
    proc = run_cli("run", str(bikes_video), "--model", "yolo11n.yaml", "--imgsz", "64", "--max-frames", "2",
                   "--jsonl", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0 and len(out.read_text().splitlines()) == 2, proc.stderr
    warned = [line for line in proc.stderr.splitlines() if " WARNING " in line]
    assert len(warned) == 1 and warned[0].endswith(
        "yolo11n.yaml is a model architecture: its weights are random, so it detects nothing real (it serves shape "
        "and speed tests); for detections give trained weights: --model /path/to/yolo11n.pt"), proc.stderr
