"""Builds the `heapscope` Python package.

The package bundles two products of the SwiftPM package (PythonHarness/.. in
the repository, swift/ in an sdist): the tracker extension
(libHeapscopeTracker.so, installed as heapscope/_tracker<EXT_SUFFIX>) and the
CLI (installed as heapscope/bin/heapscope). The build step runs the same
`swift build`s as `make build`, the tracker against the headers of the
interpreter that runs this build, so the extension matches it; the package
holds that interpreter's tracker only. Before it, the interpreter, the
toolchain and the headers the build needs are checked, so a machine without
them gets one line saying what is missing (and that the prebuilt wheel needs
none of it).

Environment:
  HEAPSCOPE_PREBUILT=1      do not run swift build; use the artifacts already
                            in heapscope/ (what `make install` and `make wheel` do after `make build`)
  HEAPSCOPE_SCRATCH_PATH    SwiftPM scratch path of the CLI (default: .build; the
                            tracker's is the same with -py3XY appended)
  SWIFT                     the swift driver (default: swift on PATH, else /opt/swift/usr/bin/swift)
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = os.path.join(HERE, "heapscope")
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
TRACKER = "_tracker" + EXT_SUFFIX

sys.path.insert(0, HERE)
from supported_python import problem  # noqa: E402  (the build's own helper, next to this file)
# What of the SwiftPM package an sdist carries (under swift/) to build from source.
SWIFT_PACKAGE_FILES = ["Package.swift", "Sources", "Tests"]  # Package.swift declares the test targets too
SDIST_SWIFT_DIR = "swift"


def _swift_package_dir():
    """The SwiftPM package: the repository around PythonHarness/, or swift/ in an sdist."""
    for candidate in (os.path.dirname(HERE), os.path.join(HERE, SDIST_SWIFT_DIR)):
        if os.path.exists(os.path.join(candidate, "Package.swift")):
            return candidate
    return None


def _swift():
    swift = os.environ.get("SWIFT") or shutil.which("swift")
    if not swift and os.path.exists("/opt/swift/usr/bin/swift"):
        swift = "/opt/swift/usr/bin/swift"
    return swift if swift and os.access(swift, os.X_OK) else None


def _header_dirs():
    dirs = [sysconfig.get_paths()["include"]]
    for var in ("CPATH", "C_INCLUDE_PATH"):
        dirs += [d for d in os.environ.get(var, "").split(os.pathsep) if d]
    multiarch = sysconfig.get_config_var("MULTIARCH") or "%s-linux-gnu" % os.uname().machine
    return dirs + ["/usr/local/include", "/usr/include/" + multiarch, "/usr/include"]


# (what to install, a header it provides) for every C library the build compiles against.
BUILD_HEADERS = [
    ("the CPython headers (python3-dev)", "Python.h"),
    ("libunwind-dev", "libunwind.h"),
    ("libdw-dev", "elfutils/libdwfl.h"),
    ("libzstd-dev", "zstd.h"),
]


def missing_build_requirements(swift):
    """What a source build needs and this machine lacks, as names to install."""
    missing = [] if swift else ["the Swift 6.3 toolchain (swift on PATH, or SWIFT=/path/to/swift)"]
    dirs = _header_dirs()
    for name, header in BUILD_HEADERS:
        if not any(os.path.isfile(os.path.join(d, header)) for d in dirs):
            missing.append("%s (%s)" % (name, header))
    return missing


def _install_file(src, dst, mode):
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, mode)
    os.replace(tmp, dst)  # never rewrite a .so a running process has mapped


def build_swift():
    repo = _swift_package_dir()
    if repo is None:
        return False
    message = problem()
    if message:
        sys.exit("heapscope: error: " + message)
    swift = _swift()
    missing = missing_build_requirements(swift)
    if missing:
        sys.exit(
            "heapscope: error: cannot build from source, this machine lacks %s; install %s, "
            "or install a prebuilt wheel instead (pip install heapscope-<version>-cp%d%d-*.whl, made by `make wheel`), "
            "which needs none of it"
            % (", ".join(missing), "it" if len(missing) == 1 else "them", sys.version_info[0], sys.version_info[1])
        )
    scratch = os.environ.get("HEAPSCOPE_SCRATCH_PATH", ".build")
    tracker_scratch = "%s-py%d%d" % ((scratch,) + tuple(sys.version_info[:2]))
    include = sysconfig.get_paths()["include"]
    gnu = ["-Xswiftc", "-Xcc", "-Xswiftc", "-D_GNU_SOURCE", "-Xswiftc", "-static-stdlib"]
    for cmd in (
        [swift, "build", "-c", "release", "--product", "heapscope", "--scratch-path", scratch] + gnu,
        [swift, "build", "-c", "release", "--product", "HeapscopeTracker", "--scratch-path", tracker_scratch,
         "-Xcc", "-I" + include] + gnu,
    ):
        print("heapscope: building:", " ".join(cmd), flush=True)
        subprocess.check_call(cmd, cwd=repo)
    os.makedirs(os.path.join(PACKAGE, "bin"), exist_ok=True)
    _install_file(os.path.join(repo, tracker_scratch, "release", "libHeapscopeTracker.so"),
                  os.path.join(PACKAGE, TRACKER), 0o755)
    _install_file(os.path.join(repo, scratch, "release", "heapscope"), os.path.join(PACKAGE, "bin", "heapscope"), 0o755)
    return True


def check_artifacts():
    missing = [
        p for p in (os.path.join(PACKAGE, TRACKER), os.path.join(PACKAGE, "bin", "heapscope"))
        if not os.path.isfile(p)
    ]
    if missing:
        sys.exit(
            "heapscope: error: missing build products: %s (run `make build` with this interpreter, %s)"
            % (", ".join(missing), sys.executable)
        )


class BuildPyWithSwift(build_py):
    def run(self):
        if os.environ.get("HEAPSCOPE_PREBUILT") != "1":
            build_swift()
        check_artifacts()
        self.__dict__.pop("data_files", None)  # recompute: the artifacts may be new
        super().run()
        # A build folder that another interpreter's build used keeps its tracker: drop it.
        for path in glob.glob(os.path.join(self.build_lib, "heapscope", "_tracker*")):
            if os.path.basename(path) != TRACKER:
                os.remove(path)


class SdistWithSwift(sdist):
    """Adds the SwiftPM package (Package.swift, Sources/, Tests/) under swift/, so the sdist builds from source."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        repo = _swift_package_dir()
        if repo is None:
            sys.exit("heapscope: error: no Package.swift next to PythonHarness/ to put in the sdist")
        for name in SWIFT_PACKAGE_FILES:
            src, dst = os.path.join(repo, name), os.path.join(base_dir, SDIST_SWIFT_DIR, name)
            if os.path.isdir(src):
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.o", "*.so"))
            else:
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copy2(src, dst)


class BinaryDistribution(Distribution):
    """The wheel holds a CPython extension and an ELF binary: it is a platform wheel, not pure."""

    def has_ext_modules(self):
        return True


# This interpreter's tracker only: the folder may hold other versions' too.
setup(
    cmdclass={"build_py": BuildPyWithSwift, "sdist": SdistWithSwift},
    distclass=BinaryDistribution,
    package_data={"heapscope": [TRACKER, "bin/heapscope", "_bootstrap/sitecustomize.py", "VERSION", "py.typed"]},
    scripts=["scripts/heapscope"],
)
