"""Every reason code a video, a preprocessing run or a web-app job can end with: one table.

A failed video (``PreprocessError.reason``, a cache's ``failed/*.json`` and manifest, a
``DetectionResult.reason``, a job of ``forensight serve``) carries one of the codes of
:data:`REASONS`, each with what it means and what the user can do about it. The manual's table
(``docs/reference/reasons.md``) is generated from this list (``python -m forensight.reasons``) and
a test checks both that the page is up to date and that every code the package raises is listed,
so the two cannot drift apart.

This module is at the bottom of the data flow (standard library only).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REASONS", "Reason", "describe", "markdown_page"]


@dataclass(frozen=True)
class Reason:
    """One reason code.

    Attributes:
        code: the machine code (``snake_case``), as it appears in results and manifests.
        meaning: what happened, in one or two sentences.
        action: what the user can do about it.
        where: which parts can report it: "preprocess", "detect", "serve" (a job or an upload),
            "robustness" (a perturbed copy of a video).
    """

    code: str
    meaning: str
    action: str
    where: tuple[str, ...]


_ALL = ("preprocess", "detect", "serve")

_LIST = (
    Reason("not_found", "Nothing exists at the given path.",
           "Check the path (spelling, working folder); for a dataset, check its root folder.", _ALL),
    Reason("empty_file", "The file is 0 bytes long.",
           "The copy or download failed: fetch the file again.", _ALL),
    Reason("unreadable",
           "The file cannot be opened as a video: not a container FFmpeg recognises, a damaged header, a codec "
           "that cannot be opened, or no permission to read it. The message says which.",
           "Check the file plays in a video player; re-download or re-export it (e.g. "
           "`ffmpeg -i in -c:v libx264 out.mp4`); fix its permissions.", _ALL),
    Reason("no_video_stream", "The file is a container without a video stream (e.g. audio only).",
           "Give the video file itself, not its audio track.", _ALL),
    Reason("not_a_video", "The file is a still image (one frame in an image codec), perhaps renamed `.mp4`.",
           "Score videos only; a photo cannot be analysed over time.", _ALL),
    Reason("not_regular_file", "The path is a folder, named pipe, socket or device, not a file.",
           "Give a regular video file (a folder is expanded by `forensight detect`, not by a single predict).",
           ("preprocess", "detect")),
    Reason("dangling_link", "The path is a symbolic link to nothing (or a link loop).",
           "Fix or remove the link.", ("preprocess", "detect")),
    Reason("no_videos", "A folder was given that holds no video files.",
           "Check the folder; see the accepted extensions in the message.", ("detect",)),
    Reason("wrong_format",
           "The input kind does not fit the config (e.g. `input: mouth_crops` with frames that are not aligned "
           "mouth crops).", "Use the preprocessing input that matches the files (`input: video` for raw video).",
           ("preprocess",)),
    Reason("too_large", "A frame side exceeds `max_side`, or decoding ran out of memory.",
           "Downscale the video (e.g. to 1080p) or raise `max_side` if the machine has the memory.", _ALL),
    Reason("too_short",
           "Fewer frames than the sampling or the model needs (no frame at all for a damaged stream).",
           "Use a longer clip; for a damaged file, re-download it. The message says how many frames are needed.",
           _ALL),
    Reason("truncated",
           "The file ends before the length its container declares (a cut download or copy), and the config "
           "refuses truncated files (`on_truncated: fail`), or a wanted frame lies beyond the surviving data.",
           "Re-download the file; or set `on_truncated: warn` to score the surviving frames.", _ALL),
    Reason("decode_error",
           "The video data is damaged: a wanted frame cannot be decoded, or the stream changes frame size "
           "mid-way.", "Re-download or re-encode the file; the message names the frame.", _ALL),
    Reason("no_face", "No face was detected in any sampled frame.",
           "Check the video shows a face large enough (about 40 px or more); crop to the person.", _ALL),
    Reason("low_face_coverage",
           "A face was found in too few sampled frames to score it reliably (below the model's coverage "
           "threshold).", "Use a clip where the face is visible most of the time, or trim the video to it.",
           ("detect", "serve")),
    Reason("too_few_frames",
           "A real video has too few sampled frames to make a pseudo-fake from it (`preprocess --pseudo-fakes`).",
           "Sample more frames (`preprocess --frames`) or use longer real videos; the real video itself is kept.",
           ("preprocess",)),
    Reason("landmarks_off_frame",
           "The chosen region's landmarks leave the frame (or are missing) in some sampled frames, so no "
           "pseudo-fake of that region is made (`preprocess --pseudo-fakes`).",
           "Use videos where the whole face stays in the frame, or another `--pseudo-region`; the real "
           "video itself is kept.", ("preprocess",)),
    Reason("worker_crashed",
           "A worker process died on this video (out of memory, or a crash in native decoding / "
           "face-detection code); in the web app, the job was interrupted more times than allowed.",
           "Retry with more memory or fewer workers; if it happens again on the same file, report it with "
           "the file.", ("preprocess", "serve")),
    Reason("interrupted", "The web app stopped (or was killed) during the job more times than allowed.",
           "Upload the video again once the server runs steadily.", ("serve",)),
    Reason("disk_full",
           "A write met a full disk (ENOSPC) or a disk quota. Nothing half-written is kept; the message says "
           "what was being written and how much room it needed.",
           "Free space (the message gives the amount) and rerun: preprocessing and caches resume where they "
           "stopped; the web app accepts the upload again.", _ALL),
    Reason("upload_missing", "The job's uploaded video is no longer on the server (deleted by retention).",
           "Upload the video again.", ("serve",)),
    Reason("model_unavailable", "The job's model is no longer offered by the server.",
           "Upload again and choose one of the offered models.", ("serve",)),
    Reason("model_error", "The job's model file could not be loaded (missing, tampered or foreign).",
           "Ask the server's operator to check the model file.", ("serve",)),
    Reason("perturbation_error",
           "The robustness suite could not write a perturbed copy of this video (the message names the "
           "exception).", "Check the video decodes (`forensight detect` on it) and report the message if it does.",
           ("robustness",)),
    Reason("error",
           "An unexpected internal error: a bug, not a problem with the video. The message and log name the "
           "exception.", "Report it with the message (and the file if you can share it).", _ALL),
)

#: Every reason code, in the order of the manual's table.
REASONS: dict[str, Reason] = {r.code: r for r in _LIST}


def describe(code: str) -> Reason:
    """The :class:`Reason` of ``code``; ``KeyError`` naming the known codes if it is not one."""
    try:
        return REASONS[code]
    except KeyError:
        raise KeyError(f"unknown reason code {code!r}; known: {', '.join(REASONS)}") from None


def markdown_page() -> str:
    """The manual page ``docs/reference/reasons.md`` (Markdown), generated from :data:`REASONS`."""
    lines = [
        "# Reason codes",
        "",
        "Every video that is not scored, and every failed job of the web app, ends with one of these",
        "codes in its `reason` field (JSON results, `results.csv`, a cache's `manifest.csv` and",
        "`failed/*.json`, the web app's job record). An upload the web app refuses answers with the",
        "same codes for the reader's verdicts (HTTP 415) and `disk_full` (HTTP 507).",
        "",
        "This page is generated from `forensight.reasons.REASONS` (`python -m forensight.reasons >",
        "docs/reference/reasons.md`); a test fails when it is out of date or when the code raises a",
        "reason that is not listed.",
        "",
        "| code | meaning | what you can do | reported by |",
        "|---|---|---|---|",
    ]
    for r in REASONS.values():
        cells = (f"`{r.code}`", r.meaning, r.action, ", ".join(r.where))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", ("`error` should never appear: it marks a bug. The container fuzz test "
                   "(see [Under faults](../guide/faults.md)) checks that damaged files end with a named reason."), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_page(), end="")
