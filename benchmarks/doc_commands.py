"""Run every shell command in README.md and docs/*.md as written, and record what happened.

The commands come from the fenced code blocks (``\\`` continuations joined; a line counts as a
command when its first word, after any ``VAR=value``, is one of `PROGRAMS`). They run one at a
time, in document order (README first, then docs/ by name), in one scratch copy of the
repository, so that a command finds what an earlier one made (``make demo``'s run, a
``--out`` folder). Each gets a status:

- ``ok`` / ``failed`` (exit code, or the timeout);
- ``skipped: <reason>`` only for what a 2-core offline CPU machine cannot do (a GPU, the
  internet, several machines, ImageNet), for commands stated to take longer than the budget,
  and for the explicit `NOT_HERE` list (run elsewhere).

Placeholders the docs mark as the reader's own (``photo.png``, ``runs/<run>``...) get a small
stand-in made before the first command (`make_standins`), or are replaced by what an earlier
command made (`SUBSTITUTIONS`); the JSON keeps the command as written and as run.

    python benchmarks/doc_commands.py                         # everything: about an hour
    python benchmarks/doc_commands.py --only docs/evaluation.md --scratch /tmp/doc-commands
        # again for one file (or FILE:LINE), in the same scratch folder; updates the JSON

Writes ``benchmarks/results/doc-commands-<cpu>.json`` and prints one row per command: stated
time (the comment's ``# ~6 min``) next to the measured one, and the 1-minute load average,
because the timings are taken on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlpmixer.cpu_kind import this_cpu

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
PROGRAMS = {"mlpmixer", "python", "python3", "make", "torchrun", "pip", "aws", "bash"}
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}
TAIL_LINES = 12
BUDGET_S = 15 * 60

# (file, section heading, reason): commands run elsewhere, not by this script
NOT_HERE = [
    ("docs/analyses.md", "The pictures in the README", "run by the lead for the pictures"),
]

# (pattern in the command, reason), first match wins: what this machine cannot do
SKIP_RULES = [
    (r"--device cuda|make gpu-check", "needs a GPU (CUDA)"),
    (r"--nnodes", "needs several machines (multi-node torchrun)"),
    (r"--nproc_per_node 8", "needs 8 GPUs and ImageNet-1k (not on this machine)"),
    (r"hf-hub:", "needs the internet (Hugging Face hub download of a real checkpoint)"),
    (r"pretrained=True", "needs the internet (downloads the published weights)"),
    (r"gs://", "needs the internet (Google's gs://mixer_models bucket)"),
    (r"hf:ILSVRC", "needs the internet (ImageNet-1k from the Hugging Face hub, gated)"),
    (r"s3://", "needs the internet (an S3 bucket) and the aws CLI"),
    (r"\bdata/imagenet\b", "needs ImageNet-1k on disk (the reader's own copy, ~150 GB)"),
    (r"imagenet1k_b16", "needs ImageNet-1k (not on this machine) and days of GPU time"),
    (r"cifar10", "needs the internet (CIFAR-10 download, 170 MB; not in this machine's cache)"),
    (r"--resume runs/c10", "resumes runs/c10, the CIFAR-10 run above (needs the internet)"),
]

# placeholders the docs leave to the reader -> what this script uses instead
SUBSTITUTIONS = {
    "runs/<run>": "{digits_run}",  # the run `make demo` made (README: "prints the run directory")
    "runs/digits-...": "{digits_run}",
    "A/model": "{digits_run}/model",  # docs/analyses.md's two models of one input size:
    "B/model": "{digits_run}/model",  # the same digits run twice (CKA 1 on the diagonal)
    "/data/my-images": "data/my-images",  # a class-folder stand-in inside the scratch folder
    "/data/my-folders": "data/my-images",
}
# the docs' own shell variables, defined in their prose (docs/models.md)
DOC_ENV = {
    "M": "--batch-size 64 --seed 0 --set model.overrides.hidden_dim=64 --set "
    "model.overrides.num_blocks=4 --set model.overrides.tokens_mlp_dim=32 --set "
    "model.overrides.channels_mlp_dim=256",
}

_TIME = re.compile(
    r"(?P<bound>[<~]|under|about)?\s*(?P<n>\d+(?:\.\d+)?|a|one)\s*"
    r"(?P<unit>s|sec|seconds?|min|minutes?|h|hours?)\b",
    re.IGNORECASE,
)
_UNIT_S = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "min": 60, "minute": 60, "minutes": 60}
_UNIT_S |= {"h": 3600, "hour": 3600, "hours": 3600}


@dataclass
class DocCommand:
    """One command of a doc: where it is, its text as written (comment cut off)."""

    file: str
    line: int
    command: str
    comment: str = ""


@dataclass
class Outcome:
    """What running (or not running) one `DocCommand` gave."""

    file: str
    line: int
    command: str
    status: str
    run_as: str | None = None
    stated: str | None = None
    stated_seconds: float | None = None
    seconds: float | None = None
    exit_code: int | None = None
    same_as: str | None = None
    load_before: list[float] = field(default_factory=list)
    load_after: list[float] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)


def split_comment(line: str) -> tuple[str, str]:
    """``cmd  # note`` -> (``cmd``, ``note``); a ``#`` inside quotes or a word is kept."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def is_command(text: str) -> bool:
    words = text.split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
        words = words[1:]  # VAR=value prefixes
    return bool(words) and (words[0] in PROGRAMS or words[0].endswith("/python"))


def fenced_blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line number, language, lines) of every fenced block."""
    blocks: list[tuple[int, str, list[str]]] = []
    inside, lines, start, lang = False, [], 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"\s*```(\w*)", line)
        if fence and not inside:
            inside, lines, start, lang = True, [], number + 1, fence.group(1)
        elif fence:
            inside = False
            blocks.append((start, lang, lines))
        elif inside:
            lines.append(line)
    return blocks


def shell_commands(start: int, lines: list[str], rel: str) -> list[DocCommand]:
    """The commands of one shell block, continuations joined, trailing comments apart."""
    found, i = [], 0
    while i < len(lines):
        first, parts, comments = i, [], []
        while True:
            body, note = split_comment(lines[i])
            comments += [note] if note else []
            i += 1
            if body.endswith("\\") and i < len(lines):
                parts.append(body[:-1].strip())
                continue
            parts.append(body.strip())
            break
        command = " ".join(p for p in parts if p)
        if is_command(command):
            found.append(DocCommand(rel, start + first, command, " ".join(comments)))
    return found


def commands_in(path: Path, rel: str) -> list[DocCommand]:
    """The commands of one Markdown file in order: shell lines, and each Python block whole
    (run as ``python - <<'EOF'``)."""
    found = []
    for start, lang, lines in fenced_blocks(path.read_text(encoding="utf-8")):
        if lang in SHELL_FENCES:
            found += shell_commands(start, lines, rel)
        elif lang == "python":
            body = "\n".join(lines)
            found.append(DocCommand(rel, start, f"python - <<'EOF'\n{body}\nEOF"))
    return found


def stated_time(comment: str) -> tuple[str | None, float | None]:
    """The time a comment states (``~6 min``, ``< 1 minute``) as text and seconds."""
    match = _TIME.search(comment)
    if not match:
        vague = re.search(r"(a few|several) (minutes|hours)", comment)
        return (vague.group(0) if vague else None), None
    n = match.group("n").lower()
    count = 1.0 if n in ("a", "one") else float(n)
    return match.group(0).strip(), count * _UNIT_S[match.group("unit").lower()]


@functools.cache
def section_lines(rel: str, heading: str) -> tuple[int, int]:
    """The line numbers of a Markdown section's heading and of the next heading (or the end)."""
    lines = (ROOT / rel).read_text(encoding="utf-8").splitlines()
    heads, fenced = [], False
    for n, line in enumerate(lines, 1):
        fenced ^= line.lstrip().startswith("```")
        if line.startswith("#") and not fenced:  # a "# comment" in a code block is no heading
            heads.append(n)
    first = next((n for n in heads if lines[n - 1].lstrip("#").strip() == heading), 0)
    last = next((n for n in heads if n > first), len(lines) + 1) if first else 0
    return first, last


def skip_reason(cmd: DocCommand, stated_s: float | None) -> str | None:
    for rel, heading, reason in NOT_HERE:
        first, last = section_lines(rel, heading)
        if cmd.file == rel and first < cmd.line < last:
            return reason
    for pattern, reason in SKIP_RULES:
        if re.search(pattern, cmd.command):
            return reason
    if stated_s is not None and stated_s > BUDGET_S:
        return f"stated to take {stated_s / 60:.0f} min, over the {BUDGET_S // 60} min budget"
    return None


def digits_run(scratch: Path) -> str:
    """The newest digits run in the scratch folder (made by `make demo` / `mlpmixer train`)."""
    runs = sorted((scratch / "runs").glob("digits-*"), key=lambda p: p.stat().st_mtime)
    return str(runs[-1].relative_to(scratch)) if runs else "runs/<run>"


def as_run(command: str, scratch: Path) -> str:
    for placeholder, replacement in SUBSTITUTIONS.items():
        if placeholder in command:
            command = command.replace(placeholder, replacement)
    if "{digits_run}" in command:
        command = command.replace("{digits_run}", digits_run(scratch))
    return command


def tail_of(output: str) -> list[str]:
    """The last lines, a progress bar's carriage returns read as line ends."""
    lines = [ln.rstrip() for ln in re.split(r"[\r\n]+", output) if ln.strip()]
    return lines[-TAIL_LINES:]


def run_one(cmd: DocCommand, scratch: Path, env: dict[str, str], timeout: float) -> Outcome:
    stated, stated_s = stated_time(cmd.comment)
    out = Outcome(cmd.file, cmd.line, cmd.command, "", stated=stated, stated_seconds=stated_s)
    reason = skip_reason(cmd, stated_s)
    if reason:
        out.status = f"skipped: {reason}"
        return out
    command = as_run(cmd.command, scratch)
    out.run_as = command if command != cmd.command else None
    out.load_before = [round(x, 2) for x in os.getloadavg()]
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["bash", "-c", command], cwd=scratch, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        output = proc.communicate(timeout=timeout)[0].decode(errors="replace")
        out.exit_code = proc.returncode
        out.status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole group: make, torchrun's workers...
        output = proc.communicate()[0].decode(errors="replace")
        out.status = f"failed: timed out after {timeout:.0f} s"
    out.seconds = round(time.perf_counter() - start, 1)
    out.load_after = [round(x, 2) for x in os.getloadavg()]
    out.tail = tail_of(output)
    log = scratch / "doc-command-logs" / f"{Path(cmd.file).stem}-{cmd.line}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(f"$ {command}\n{output}", encoding="utf-8")
    return out


def make_scratch(scratch: Path) -> None:
    """A copy of the repository's tracked files (as they are in the work tree)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    for rel in files.stdout.decode().split("\0"):
        src = ROOT / rel
        if rel and (src.is_file() or src.is_symlink()):
            dst = scratch / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst, follow_symlinks=False)


STANDINS = [
    "photo.png, photo.jpg, scans/ (4 PNGs), photos/ (4 PNGs): scikit-learn digits at 32x32",
    "data/my-images/<digit>/*.png: 200 digits in 10 class folders (for /data/my-images)",
    "Mixer-B_16.npz: a randomly initialised Mixer-B/16 in the official .npz layout "
    "(the real file is a 240 MB download)",
]


def make_standins(scratch: Path) -> None:
    """Small stand-ins for the files the docs leave to the reader (`STANDINS`)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    import mlpmixer

    digits = load_digits()

    def png(path: Path, i: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * (255 / 16)).astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32), Image.NEAREST).save(path)

    png(scratch / "photo.png", 0)
    Image.open(scratch / "photo.png").convert("RGB").save(scratch / "photo.jpg", quality=90)
    for i in range(4):
        png(scratch / "scans" / f"scan{i}.png", 10 + i)
        png(scratch / "photos" / f"photo{i}.png", 20 + i)
    for i in range(200):  # 10 classes x 20 images
        png(scratch / "data" / "my-images" / str(digits.target[i]) / f"{i:03d}.png", i)
    official = scratch / "Mixer-B_16.npz"
    mlpmixer.save_model(mlpmixer.create_model("mixer_b16_224"), official)
    for sidecar in scratch.glob("Mixer-B_16.npz.*"):
        sidecar.unlink()  # the official file comes without one


def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(DOC_ENV)
    env.setdefault("COLUMNS", "100")
    return env


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def selected(cmd: DocCommand, only: list[str]) -> bool:
    return not only or any(sel in (cmd.file, f"{cmd.file}:{cmd.line}") for sel in only)


def one_line(command: str) -> str:
    return command.replace("\n", " | ")


def print_table(outcomes: list[Outcome]) -> None:
    print(f"{'where':<28}{'status':<9}{'s':>8}{'stated':>14}{'load':>6}  command")
    for o in outcomes:
        status = o.status.split(":")[0] if o.status.startswith("skipped") else o.status[:8]
        secs = f"{o.seconds:.0f}" if o.seconds is not None else "-"
        load = f"{o.load_before[0]:.1f}" if o.load_before else "-"
        print(f"{o.file + ':' + str(o.line):<28}{status:<9}{secs:>8}{(o.stated or '-')[:13]:>14}"
              f"{load:>6}  {one_line(o.command)[:70]}")  # fmt: skip
        if o.status.startswith("skipped"):
            print(f"{'':<28}{o.status}")


def write_results(path: Path, outcomes: list[Outcome], meta: dict, docs: list[DocCommand]) -> None:
    """Merge ``outcomes`` into the JSON at ``path``: an earlier entry is kept while its command
    is still in the docs word for word (its line updated if text above it moved), and the
    commands of the docs with no entry are listed under ``not_run``."""
    old = json.loads(path.read_text()) if path.exists() else {"commands": []}
    fresh = {(o.file, o.line): asdict(o) for o in outcomes}
    lines: dict[tuple[str, str], list[int]] = {}
    for d in docs:
        lines.setdefault((d.file, d.command), []).append(d.line)
    merged = list(fresh.values())
    for c in old["commands"]:
        now = lines.get((c["file"], c["command"]), [])
        line = min(now, key=lambda n: abs(n - c["line"]), default=None)
        if line is not None and (c["file"], line) not in fresh:
            fresh[(c["file"], line)] = c
            merged.append({**c, "line": line})
    merged.sort(key=lambda c: (doc_order(c["file"]), c["line"]))
    not_run = [f"{d.file}:{d.line}" for d in docs if (d.file, d.line) not in fresh]
    result = {**meta, "not_run": not_run, "commands": merged}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def git_head() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True)
    return head.stdout.decode().strip()


def doc_order(rel: str) -> tuple[int, str]:
    return (0 if rel == "README.md" else 1, rel)


def cpu_slug() -> str:
    return re.sub(r"[^a-z0-9]+", "-", this_cpu().model.lower()).strip("-")


def run_meta(timeout: float) -> dict:
    return {
        "benchmark": "doc_commands",
        "machine": this_cpu().model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "commit": git_head(),
        "timeout_s": timeout,
        "standins": STANDINS,
        "substitutions": SUBSTITUTIONS,
        "doc_env": DOC_ENV,
    }


def earlier_runs(path: Path) -> dict[str, Outcome]:
    """Commands already run (ok or failed, not timed out) in an earlier invocation, by text."""
    if not path.exists():
        return {}
    done = {}
    for c in json.loads(path.read_text())["commands"]:
        if c["exit_code"] is not None and not c.get("same_as"):
            done.setdefault(c["command"], Outcome(**c))
    return done


def repeat_of(cmd: DocCommand, earlier: dict[str, Outcome]) -> Outcome | None:
    """A command that appears twice word for word is run once: the second copy points at the
    first and repeats its result (it reads and writes the same files, so it would only
    measure the machine again)."""
    first = earlier.get(cmd.command)
    if first is None or (first.file, first.line) == (cmd.file, cmd.line):
        return None
    stated, stated_s = stated_time(cmd.comment)
    return Outcome(cmd.file, cmd.line, cmd.command, first.status, first.run_as, stated,
                   stated_s, first.seconds, first.exit_code, f"{first.file}:{first.line}",
                   first.load_before, first.load_after, first.tail)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="FILE or FILE:LINE to run")
    parser.add_argument("--scratch", type=Path, default=None, help="reused when it exists")
    parser.add_argument("--timeout", type=float, default=BUDGET_S, help="seconds per command")
    parser.add_argument("--list", action="store_true", help="list the commands, run nothing")
    parser.add_argument(
        "--refresh", action="store_true", help="copy the repository's files into --scratch again"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    docs = [c for f in doc_files() for c in commands_in(f, str(f.relative_to(ROOT)))]
    commands = [c for c in docs if selected(c, args.only)]
    if args.list:
        for c in commands:
            print(f"{c.file}:{c.line}: {c.command}" + (f"  # {c.comment}" if c.comment else ""))
        return
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="doc-commands-"))
    if not (scratch / "README.md").exists():
        scratch.mkdir(parents=True, exist_ok=True)
        make_scratch(scratch)
        make_standins(scratch)
    elif args.refresh:
        make_scratch(scratch)  # the docs' and the code's current state; runs and stand-ins stay
    out = args.out or RESULTS / f"doc-commands-{cpu_slug()}.json"
    meta = run_meta(args.timeout)
    env, outcomes = command_env(), []
    earlier = earlier_runs(out)
    for cmd in commands:
        o = repeat_of(cmd, earlier) or run_one(cmd, scratch, env, args.timeout)
        if o.exit_code is not None and not o.same_as:
            earlier[o.command] = o  # this run's result, not an older one's
        outcomes.append(o)
        print(f"{o.file}:{o.line} {o.status} {o.seconds}s  {one_line(o.command)[:80]}", flush=True)
        write_results(
            out, outcomes, meta, docs
        )  # after every command: a long run keeps what it did
    print_table(outcomes)
    print(f"scratch folder: {scratch}\nwrote {out}")


if __name__ == "__main__":
    main()
