"""`heapscope transform`, and the text reports that take the view options.

The pprof output is decoded with the `protobuf` package against profile.proto
(the messages of github.com/google/pprof's proto/profile.proto, built here as a
descriptor: field numbers per the public spec); the speedscope output is
validated with `jsonschema` against a schema written from speedscope's
documented file format.
"""
import csv
import gzip
import io
import json
import shutil

import pytest

from conftest import EXAMPLES, Heapscope, comprehension_frame


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("transform")


@pytest.fixture(scope="module")
def hsm(workdir):
    return Heapscope(workdir)


_captures = {}


def capture(hs, workdir, script, *options):
    key = (script, options)
    if key not in _captures:
        shutil.copy(EXAMPLES / script, workdir / script)
        out = workdir / f"{script[:-3]}-{len(_captures)}.hsc"
        proc = hs("run", "-q", "-f", *options, "-o", str(out), script)
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        _captures[key] = out
    return _captures[key]


def transform(hs, fmt, cap, *options):
    proc = hs("transform", fmt, "-o", "-", *options, str(cap))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


# ------------------------------------------------------------------ pprof

def profile_message_class():
    descriptor_pb2 = pytest.importorskip("google.protobuf.descriptor_pb2")
    from google.protobuf import descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    I64, U64, STR, BOOL, MSG = F.TYPE_INT64, F.TYPE_UINT64, F.TYPE_STRING, F.TYPE_BOOL, F.TYPE_MESSAGE
    messages = {
        "Profile": [("sample_type", 1, REP, MSG, "ValueType"), ("sample", 2, REP, MSG, "Sample"),
                    ("mapping", 3, REP, MSG, "Mapping"), ("location", 4, REP, MSG, "Location"),
                    ("function", 5, REP, MSG, "Function"), ("string_table", 6, REP, STR, None),
                    ("drop_frames", 7, OPT, I64, None), ("keep_frames", 8, OPT, I64, None),
                    ("time_nanos", 9, OPT, I64, None), ("duration_nanos", 10, OPT, I64, None),
                    ("period_type", 11, OPT, MSG, "ValueType"), ("period", 12, OPT, I64, None),
                    ("comment", 13, REP, I64, None), ("default_sample_type", 14, OPT, I64, None)],
        "ValueType": [("type", 1, OPT, I64, None), ("unit", 2, OPT, I64, None)],
        "Sample": [("location_id", 1, REP, U64, None), ("value", 2, REP, I64, None), ("label", 3, REP, MSG, "Label")],
        "Label": [("key", 1, OPT, I64, None), ("str", 2, OPT, I64, None), ("num", 3, OPT, I64, None),
                  ("num_unit", 4, OPT, I64, None)],
        "Mapping": [("id", 1, OPT, U64, None), ("memory_start", 2, OPT, U64, None), ("memory_limit", 3, OPT, U64, None),
                    ("file_offset", 4, OPT, U64, None), ("filename", 5, OPT, I64, None), ("build_id", 6, OPT, I64, None),
                    ("has_functions", 7, OPT, BOOL, None), ("has_filenames", 8, OPT, BOOL, None),
                    ("has_line_numbers", 9, OPT, BOOL, None), ("has_inline_frames", 10, OPT, BOOL, None)],
        "Location": [("id", 1, OPT, U64, None), ("mapping_id", 2, OPT, U64, None), ("address", 3, OPT, U64, None),
                     ("line", 4, REP, MSG, "Line"), ("is_folded", 5, OPT, BOOL, None)],
        "Line": [("function_id", 1, OPT, U64, None), ("line", 2, OPT, I64, None)],
        "Function": [("id", 1, OPT, U64, None), ("name", 2, OPT, I64, None), ("system_name", 3, OPT, I64, None),
                     ("filename", 4, OPT, I64, None), ("start_line", 5, OPT, I64, None)],
    }
    file_proto = descriptor_pb2.FileDescriptorProto(name="heapscope_test_profile.proto",
                                                    package="perftools.profiles", syntax="proto3")
    for name, fields in messages.items():
        message = file_proto.message_type.add(name=name)
        for field_name, number, label, kind, type_name in fields:
            field = message.field.add(name=field_name, number=number, label=label, type=kind)
            if type_name:
                field.type_name = ".perftools.profiles." + type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    descriptor = pool.FindMessageTypeByName("perftools.profiles.Profile")
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def test_pprof_decodes(hsm, workdir):
    Profile = profile_message_class()
    raw = transform(hsm, "pprof", capture(hsm, workdir, "two_copies.py"))
    profile = Profile()
    profile.ParseFromString(gzip.decompress(raw))
    strings = list(profile.string_table)
    assert strings[0] == ""
    types = [(strings[t.type], strings[t.unit]) for t in profile.sample_type]
    assert types == [("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"), ("inuse_space", "bytes")]
    assert strings[profile.default_sample_type] == "inuse_space"
    functions = {f.id: f for f in profile.function}
    locations = {loc.id: loc for loc in profile.location}
    for f in functions.values():
        assert strings[f.name]
    inuse_by_function = {}
    total_inuse = 0
    for sample in profile.sample:
        assert len(sample.value) == 4
        total_inuse += sample.value[3]
        seen = set()
        for location_id in sample.location_id:
            loc = locations[location_id]
            assert loc.line
            fn = functions[loc.line[0].function_id]
            name = strings[fn.name]
            if name not in seen:
                seen.add(name)
                inuse_by_function[name] = inuse_by_function.get(name, 0) + sample.value[3]
    # Every leaf in the script's two comprehensions carries the line that allocates.
    source = (EXAMPLES / "two_copies.py").read_text().splitlines()
    expected = {}   # name -> lines: on 3.10 both comprehensions are "<listcomp>"
    for function, text in (("build_numbers", "    return [i * 3 for i in range(n)]"),
                           ("render_strings", '    return [format(v, "d") for v in values]')):
        expected.setdefault(comprehension_frame(function), set()).add(source.index(text) + 1)
    leaf_lines = {}
    for sample in profile.sample:
        leaf = locations[sample.location_id[0]].line[0]
        fn = functions[leaf.function_id]
        if strings[fn.filename].endswith("two_copies.py") and strings[fn.name] in expected:
            leaf_lines.setdefault(strings[fn.name], set()).add(leaf.line)
    assert leaf_lines == expected
    render = inuse_by_function["render_strings"] / total_inuse
    build = inuse_by_function["build_numbers"] / total_inuse
    assert 0.55 < render < 0.68 and 0.32 < build < 0.45, (render, build)
    # the listcomp frames carry file and line
    listcomp = [f for f in functions.values() if strings[f.name] == comprehension_frame("render_strings")
                and strings[f.filename].endswith("two_copies.py")]
    assert listcomp and listcomp[0].start_line > 0


# ------------------------------------------------------------------ speedscope

SPEEDSCOPE_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["$schema", "shared", "profiles"],
    "properties": {
        "$schema": {"const": "https://www.speedscope.app/file-format-schema.json"},
        "name": {"type": "string"},
        "exporter": {"type": "string"},
        "activeProfileIndex": {"type": "number"},
        "shared": {
            "type": "object",
            "required": ["frames"],
            "properties": {
                "frames": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "file": {"type": "string"},
                            "line": {"type": "number"},
                            "col": {"type": "number"},
                        },
                        "additionalProperties": False,
                    },
                }
            },
        },
        "profiles": {
            "type": "array",
            "items": {
                "oneOf": [
                    {
                        "type": "object",
                        "required": ["type", "name", "unit", "startValue", "endValue", "samples", "weights"],
                        "properties": {
                            "type": {"const": "sampled"},
                            "name": {"type": "string"},
                            "unit": {"enum": ["none", "nanoseconds", "microseconds", "milliseconds", "seconds", "bytes"]},
                            "startValue": {"type": "number"},
                            "endValue": {"type": "number"},
                            "samples": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
                            "weights": {"type": "array", "items": {"type": "number"}},
                        },
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "required": ["type", "name", "unit", "startValue", "endValue", "events"],
                        "properties": {"type": {"const": "evented"}},
                    },
                ]
            },
        },
    },
}


def test_speedscope_validates(hsm, workdir):
    jsonschema = pytest.importorskip("jsonschema")
    data = json.loads(transform(hsm, "speedscope", capture(hsm, workdir, "worker_threads.py"), "--split-threads"))
    jsonschema.validate(data, SPEEDSCOPE_SCHEMA)
    frames = data["shared"]["frames"]
    assert len(data["profiles"]) >= 4
    for profile in data["profiles"]:
        assert len(profile["samples"]) == len(profile["weights"])
        assert profile["endValue"] == sum(profile["weights"])
        for sample in profile["samples"]:
            assert all(0 <= i < len(frames) for i in sample)
    names = [p["name"] for p in data["profiles"]]
    assert sum("worker-" in n for n in names) == 4, names
    # root first: the outermost frame of a worker sample is the thread's run()
    worker = next(p for p in data["profiles"] if "worker-0" in p["name"])
    biggest = max(range(len(worker["weights"])), key=worker["weights"].__getitem__)
    stack = [frames[i]["name"] for i in worker["samples"][biggest]]
    assert "work" in stack and stack.index("work") < len(stack) - 1 or stack[-1].startswith("work")


# ------------------------------------------------------------------ collapsed, csv, gprof2dot

def test_collapsed(hsm, workdir):
    text = transform(hsm, "collapsed", capture(hsm, workdir, "two_copies.py")).decode()
    totals = {}
    whole = 0
    for line in text.splitlines():
        stack, _, value = line.rpartition(" ")
        value = int(value)
        whole += value
        frames = stack.split(";")
        for frame in frames:
            assert frame.endswith(")") and " (" in frame, frame
        for name in {f.split(" (")[0] for f in frames}:
            totals[name] = totals.get(name, 0) + value
    assert 0.55 < totals["render_strings"] / whole < 0.68
    assert "two_copies.py:" in text
    # outermost first
    first = text.splitlines()[0].split(";")
    assert first[0].startswith("<module> (")
    inverted = transform(hsm, "collapsed", capture(hsm, workdir, "two_copies.py"), "--inverted").decode()
    assert inverted.splitlines()[0].split(";")[0].startswith(comprehension_frame("render_strings") + " (")


def test_csv_leaks(hsm, workdir):
    text = transform(hsm, "csv", capture(hsm, workdir, "unbounded_cache.py"), "--leaks").decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows
    assert set(rows[0]) >= {"allocator", "num_allocations", "size", "tid", "thread_name", "stack_trace"}
    fetch = sum(int(r["size"]) for r in rows if r["stack_trace"].startswith("fetch_profile;"))
    assert fetch >= 5000 * 10 * 1024


def test_gprof2dot(hsm, workdir):
    data = json.loads(transform(hsm, "gprof2dot", capture(hsm, workdir, "two_copies.py")))
    assert data["version"] == 0 and data["costs"][0]["unit"] == "bytes"
    names = [f["name"] for f in data["functions"]]
    assert "render_strings" in names
    for event in data["events"]:
        assert all(0 <= i < len(names) for i in event["callchain"])
        assert len(event["cost"]) == 1
    pytest.importorskip("gprof2dot")
    import subprocess
    import sys
    path = workdir / "two_copies.gprof2dot.json"
    path.write_text(json.dumps(data))
    dot = subprocess.run([sys.executable, "-m", "gprof2dot", "-f", "json", str(path)], stdout=subprocess.PIPE, check=True)
    assert b"render_strings" in dot.stdout and b"digraph" in dot.stdout


def test_output_file_and_force(hsm, workdir):
    cap = capture(hsm, workdir, "two_copies.py")
    out = workdir / "out.folded"
    proc = hsm("transform", "collapsed", "-o", str(out), str(cap))
    assert proc.returncode == 0, proc.stderr
    proc = hsm("transform", "collapsed", "-o", str(out), str(cap))
    assert proc.returncode != 0 and b"-f" in proc.stderr
    proc = hsm("transform", "collapsed", "-f", "-o", str(out), str(cap))
    assert proc.returncode == 0


# ------------------------------------------------------------------ tree, summary, stats with views

def test_tree(hsm, workdir):
    proc = hsm("tree", "-b", "3", str(capture(hsm, workdir, "two_copies.py")))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "two_copies" in text and "peak" in text and "bytes" in text
    assert comprehension_frame("render_strings") in text and comprehension_frame("build_numbers") in text
    assert "└── " in text
    leaks = hsm("tree", "--leaks", str(capture(hsm, workdir, "unbounded_cache.py"))).stdout.decode()
    assert "fetch_profile" in leaks and "leaks" in leaks


def test_churn_temporary_text_reports(hsm, workdir):
    cap = capture(hsm, workdir, "churn.py", "--trace-python-allocators")
    proc = hsm("tree", "--temporary-allocations", "-b", "1", str(cap))
    assert proc.returncode == 0, proc.stderr
    assert "normalise" in proc.stdout.decode()


def test_view_errors(hsm, workdir):
    cap = capture(hsm, workdir, "two_copies.py")
    proc = hsm("flamegraph", "--leaks", "--temporary-allocations", str(cap))
    assert proc.returncode != 0 and b"choose one" in proc.stderr
    proc = hsm("tree", "--temporary-allocation-threshold", "-1", str(cap))
    assert proc.returncode != 0


def test_summary_and_stats_take_views(hsm, workdir):
    cap = capture(hsm, workdir, "unbounded_cache.py")
    proc = hsm("summary", "--leaks", str(cap))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout.decode()
    assert "leaks" in text and "fetch_profile" in text
    plain = hsm.stats_json(cap)
    leaks = hsm.stats_json(cap, "--leaks")
    assert set(plain) == set(leaks)  # same keys
    assert leaks["top_by_bytes"][0]["function"] == "fetch_profile"
    assert leaks["top_by_bytes"][0]["bytes"] >= 5000 * 10 * 1024
    churn = capture(hsm, workdir, "churn.py", "--trace-python-allocators")
    temporary = hsm.stats_json(churn, "--temporary-allocations")
    assert temporary["top_by_count"][0]["function"] == "normalise"
    assert temporary["top_by_count"][0]["count"] > 500_000
    text = hsm("stats", "--temporary-allocation-threshold", "2", str(churn)).stdout.decode()
    assert "temporary" in text and "normalise" in text


def test_progress_bar_on_a_terminal_only(hsm, workdir):
    import os
    import pty
    import subprocess
    cap = capture(hsm, workdir, "two_copies.py")
    # not a terminal: nothing but the one-line note
    proc = hsm("flamegraph", "-f", "-o", str(workdir / "p.html"), str(cap))
    assert proc.returncode == 0
    assert b"MB/s" not in proc.stderr and proc.stderr.count(b"\n") == 1
    # a terminal: the bar, with rate and time left
    master, slave = pty.openpty()
    child = subprocess.Popen(hsm.command + ["flamegraph", "-f", "-o", str(workdir / "p.html"), str(cap)],
                             stdout=subprocess.DEVNULL, stderr=slave, cwd=workdir,
                             env=dict(os.environ, HEAPSCOPE_PROGRESS_DELAY="0"))
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    child.wait(timeout=300)
    os.close(master)
    assert child.returncode == 0
    assert b"MB/s" in output and b"s left" in output and b"%" in output, output[-300:]
