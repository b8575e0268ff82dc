"""Builds the `heapscope` Python package.

The package bundles two products of the SwiftPM package one directory up
(PythonHarness/..): the tracker extension (libHeapscopeTracker.so, installed as
heapscope/_tracker<EXT_SUFFIX>) and the CLI (installed as heapscope/bin/heapscope).
The build step runs the same `swift build`s as `make build`, the tracker against
the headers of the interpreter that runs this build, so the extension matches
it; the package holds that interpreter's tracker only.

Environment:
  HEAPSCOPE_PREBUILT=1      do not run swift build; use the artifacts already
                            in heapscope/ (what `make install` does after `make build`)
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
from setuptools.dist import Distribution

try:
    from wheel.bdist_wheel import bdist_wheel
except ImportError:  # pragma: no cover - wheel is a build requirement
    bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PACKAGE = os.path.join(HERE, "heapscope")
EXT_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
TRACKER = "_tracker" + EXT_SUFFIX

sys.path.insert(0, HERE)
from supported_python import problem  # noqa: E402  (the build's own helper, next to this file)


def _swift():
    swift = os.environ.get("SWIFT") or shutil.which("swift")
    if not swift and os.path.exists("/opt/swift/usr/bin/swift"):
        swift = "/opt/swift/usr/bin/swift"
    if not swift:
        sys.exit("heapscope: error: the Swift toolchain (swift) is not on PATH; it is needed to build heapscope")
    return swift


def _install_file(src, dst, mode):
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, mode)
    os.replace(tmp, dst)  # never rewrite a .so a running process has mapped


def build_swift():
    if not os.path.exists(os.path.join(REPO, "Package.swift")):
        return False
    message = problem()
    if message:
        sys.exit("heapscope: error: " + message)
    scratch = os.environ.get("HEAPSCOPE_SCRATCH_PATH", ".build")
    tracker_scratch = "%s-py%d%d" % ((scratch,) + tuple(sys.version_info[:2]))
    include = sysconfig.get_paths()["include"]
    gnu = ["-Xswiftc", "-Xcc", "-Xswiftc", "-D_GNU_SOURCE", "-Xswiftc", "-static-stdlib"]
    for cmd in (
        [_swift(), "build", "-c", "release", "--product", "heapscope", "--scratch-path", scratch] + gnu,
        [_swift(), "build", "-c", "release", "--product", "HeapscopeTracker", "--scratch-path", tracker_scratch,
         "-Xcc", "-I" + include] + gnu,
    ):
        print("heapscope: building:", " ".join(cmd), flush=True)
        subprocess.check_call(cmd, cwd=REPO)
    os.makedirs(os.path.join(PACKAGE, "bin"), exist_ok=True)
    _install_file(os.path.join(REPO, tracker_scratch, "release", "libHeapscopeTracker.so"),
                  os.path.join(PACKAGE, TRACKER), 0o755)
    _install_file(os.path.join(REPO, scratch, "release", "heapscope"), os.path.join(PACKAGE, "bin", "heapscope"), 0o755)
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


class BinaryDistribution(Distribution):
    """The wheel holds a CPython extension and an ELF binary: it is not pure."""

    def has_ext_modules(self):
        return True


cmdclass = {"build_py": BuildPyWithSwift}

if bdist_wheel is not None:

    class PlatformWheel(bdist_wheel):
        def finalize_options(self):
            super().finalize_options()
            self.root_is_pure = False

    cmdclass["bdist_wheel"] = PlatformWheel

# This interpreter's tracker only: the folder may hold other versions' too.
setup(
    cmdclass=cmdclass,
    distclass=BinaryDistribution,
    package_data={"heapscope": [TRACKER, "bin/heapscope", "_bootstrap/sitecustomize.py"]},
)
