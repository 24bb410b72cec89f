"""The results of `cargo bench -p session-layer-compare --bench overhead`, read once for both
scripts/bench-table and scripts/bench-chart, so that the table and the chart always show the
same figures.

A source is either criterion's output directory (`target/criterion/` by default) or a CSV of
medians written by `scripts/bench-table --csv`: the CSV keeps a run's figures in the
repository, so the chart and the table can be drawn again without running the benchmarks.

Every case (a criterion group) holds the bare Router (`baseline`), `session_layer` and, where
tower-sessions has a store for the same backend, `tower_sessions`. What a crate costs is its
median minus the bare Router's median in the same group: the Router's own work is done with
or without a session layer.
"""
import csv
import datetime
import json
import os

BASELINE = "baseline"
OURS = "session_layer"
THEIRS = "tower_sessions"

# Which storages answer within the process, and which wait for a disk, a socket or a
# database: the two differ by two orders of magnitude, so they cannot share an axis.
IN_PROCESS = "in process"
ROUND_TRIP = "store round trip"

# (criterion group, label, tower-sessions' store in that case, panel), in the order shown.
# A group not listed here is shown after these, under its own name.
CASES = [
    ("memory_read_write", "memory, read-write", "MemoryStore", IN_PROCESS),
    ("memory_read_only", "memory, read-only", "MemoryStore", IN_PROCESS),
    ("no_cookie_untouched", "no cookie, session untouched", "MemoryStore", IN_PROCESS),
    ("cookie_signed_read_write", "cookie storage, signed", "tower-sessions-cookie-store (signed)", IN_PROCESS),
    ("cookie_encrypted_read_write", "cookie storage, encrypted", "tower-sessions-cookie-store (private)", IN_PROCESS),
    ("postgres_no_cookie_untouched", "PostgreSQL, no cookie", "tower-sessions-sqlx-store", IN_PROCESS),
    ("sqlite_no_cookie_untouched", "SQLite, no cookie", "tower-sessions-sqlx-store", IN_PROCESS),
    ("fs_read_write", "files, read-write", "tower-sessions-file-store", ROUND_TRIP),
    ("redis_read_write", "Redis, read-write", "tower-sessions-redis-store", ROUND_TRIP),
    ("postgres_read_write", "PostgreSQL, read-write", "tower-sessions-sqlx-store", ROUND_TRIP),
    ("postgres_read_only", "PostgreSQL, read-only", "tower-sessions-sqlx-store", ROUND_TRIP),
    ("sqlite_read_write", "SQLite, read-write", "tower-sessions-sqlx-store", ROUND_TRIP),
    ("sqlite_read_only", "SQLite, read-only", "tower-sessions-sqlx-store", ROUND_TRIP),
]
_KNOWN = {case: (label, peer, panel) for case, label, peer, panel in CASES}

# A case that is not listed above goes with the storages that answer in process when both
# crates' overheads are under this many nanoseconds.
IN_PROCESS_NS = 20_000


def default_source():
    """Where criterion writes: $CRITERION_HOME, else the workspace's target directory."""
    if os.environ.get("CRITERION_HOME"):
        return os.environ["CRITERION_HOME"]
    target = os.environ.get("CARGO_TARGET_DIR")
    if not target:
        # The scripts live in <workspace>/scripts; cargo's default target is <workspace>/target.
        target = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target")
    return os.path.join(target, "criterion")


class Results:
    """Medians in nanoseconds, `medians[case][app]`, and a line saying where they come from."""

    def __init__(self, medians, note):
        self.medians = medians
        self.note = note

    def cases(self):
        """Every case with a bare Router, the listed ones first, in the order of CASES."""
        known = [case for case, *_ in CASES if case in self.medians]
        rest = sorted(case for case in self.medians if case not in _KNOWN)
        return [case for case in known + rest if BASELINE in self.medians[case]]

    def baseline(self, case):
        return self.medians[case][BASELINE]

    def overhead(self, case, app):
        """`app`'s median minus the bare Router's, or None when `app` did not run."""
        median = self.medians[case].get(app)
        return None if median is None else median - self.baseline(case)

    def ratio(self, case):
        """Our overhead as a share of tower-sessions', or None when there is nothing to divide."""
        ours, theirs = self.overhead(case, OURS), self.overhead(case, THEIRS)
        if ours is None or theirs is None or theirs <= 0:
            return None
        return ours / theirs

    def label(self, case):
        return _KNOWN.get(case, (case.replace("_", " "),))[0]

    def peer(self, case):
        """What tower-sessions runs in this case, or None when it has no such storage."""
        if case in _KNOWN:
            return _KNOWN[case][1] if THEIRS in self.medians[case] else None
        return "tower-sessions" if THEIRS in self.medians[case] else None

    def panel(self, case):
        if case in _KNOWN:
            return _KNOWN[case][2]
        costs = [self.overhead(case, app) for app in (OURS, THEIRS)]
        small = all(c is None or c < IN_PROCESS_NS for c in costs)
        return IN_PROCESS if small else ROUND_TRIP


def load(source=None, note=None):
    """Reads a criterion directory or a CSV of medians; exits with a message when it finds
    no case with a bare Router. `note`, when given, replaces the line saying where the
    figures come from."""
    source = source or default_source()
    if os.path.isdir(source):
        results = _from_criterion(source)
    elif os.path.isfile(source):
        results = _from_csv(source)
    else:
        raise SystemExit(f"{source}: no such directory or file (run the benchmark first: "
                         "cargo bench -p session-layer-compare --bench overhead)")
    if not results.cases():
        raise SystemExit(f"{source}: no benchmark group with a bare Router ({BASELINE})")
    if note:
        results.note = note
    return results


def _from_criterion(root):
    medians, stamps = {}, []
    for group in sorted(os.listdir(root)):
        group_dir = os.path.join(root, group)
        if group == "report" or not os.path.isdir(group_dir):
            continue
        for app in sorted(os.listdir(group_dir)):
            path = os.path.join(group_dir, app, "new", "estimates.json")
            if not os.path.isfile(path):
                continue
            with open(path) as f:
                medians.setdefault(group, {})[app] = json.load(f)["median"]["point_estimate"]
            if app in (BASELINE, OURS, THEIRS):
                stamps.append(os.path.getmtime(path))
    note = "criterion medians"
    if stamps:
        # A filtered run (`-- memory`) leaves the other groups of an older run in place:
        # the span shows when the figures come from more than one run.
        first, last = (datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
                       for t in (min(stamps), max(stamps)))
        if first.date() == last.date():
            note += f", {first:%Y-%m-%d %H:%M}–{last:%H:%M} UTC"
        else:
            note += f", {first:%Y-%m-%d %H:%M} UTC to {last:%Y-%m-%d %H:%M} UTC"
    return Results(medians, note)


def _from_csv(path):
    """`case,app,median_ns` rows; `# note: …` lines say where the figures come from."""
    medians, notes = {}, []
    with open(path, newline="") as f:
        lines = []
        for line in f:
            if line.startswith("#"):
                text = line[1:].strip()
                if text.startswith("note:"):
                    notes.append(text[len("note:"):].strip())
            elif line.strip():
                lines.append(line)
    for row in csv.DictReader(lines):
        medians.setdefault(row["case"], {})[row["app"]] = float(row["median_ns"])
    return Results(medians, " ".join(notes) or f"medians from {os.path.basename(path)}")


def write_csv(results, out):
    out.write(f"# note: {results.note}\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["case", "app", "median_ns"])
    for case in results.cases():
        for app in sorted(results.medians[case]):
            writer.writerow([case, app, f"{results.medians[case][app]:.1f}"])


def us(ns):
    """Nanoseconds as microseconds with three significant figures or so: 0.20 µs, 70.4 µs,
    494 µs; from a millisecond on, milliseconds: 1.37 ms."""
    value = ns / 1000
    if abs(value) >= 1000:
        return f"{value / 1000:.2f} ms"
    if abs(value) < 10:
        return f"{value:.2f} µs"
    if abs(value) < 100:
        return f"{value:.1f} µs"
    return f"{value:.0f} µs"
