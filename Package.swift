// swift-tools-version:6.0
// The module graph follows the pipeline: capture (HeapscopeHooks, HeapscopeTracker)
// -> format (HeapscopeFormat) -> analysis (HeapscopeAnalysis) -> reports
// (HeapscopeReports) -> front-end (heapscope); capture and format share only the
// wire vocabulary (HeapscopeWire). Only the capture stage touches the profiled
// process; everything after the capture file is plain Swift.
import PackageDescription

let package = Package(
    name: "heapscope",
    products: [
        .executable(name: "heapscope", targets: ["heapscope"]),
        // Loaded into CPython as heapscope/_tracker.<EXT_SUFFIX>; links no libpython.
        .library(name: "HeapscopeTracker", type: .dynamic, targets: ["HeapscopeTracker"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        // elfutils libdwfl/libdw, plus the C++ and Swift demanglers.
        .systemLibrary(name: "CDwarf", path: "Sources/CDwarf"),
        // Built against the headers of the interpreter that will load it: the
        // Makefile passes -Xcc -I<python include dir>.
        .target(
            name: "HeapscopeHooks",
            cSettings: [.unsafeFlags(["-fvisibility=hidden", "-O2", "-gdwarf-aranges"])],
            linkerSettings: [.linkedLibrary("unwind")]
        ),
        // The tracker links the wire vocabulary only, not the reader.
        .target(
            name: "HeapscopeTracker",
            dependencies: ["HeapscopeHooks", "HeapscopeWire", "HeapscopeSystem", "CZstd"],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked", "-Ounchecked"])]
        ),
        // Record tags, encodings, the summary trailer: what the tracker writes and the reader reads.
        .target(name: "HeapscopeWire"),
        // The memory a process has left (MemAvailable, cgroups) and the floor
        // of --memory-limit: watched by the CLI and, under the API, the tracker.
        .target(name: "HeapscopeSystem"),
        // ptrace(2) for Swift, and calls into another process's main thread with it (attach).
        .target(name: "CPtrace"),
        .target(name: "HeapscopeInject", dependencies: ["CPtrace", "HeapscopeSystem"]),
        .target(name: "HeapscopeFormat", dependencies: ["HeapscopeWire", "CZstd"]),
        // Report-side symbolication; never loaded into the profiled process.
        .target(name: "HeapscopeSymbols", dependencies: ["CDwarf"]),
        // HeapscopeSymbols: hybrid stacks (HybridStacks.swift) symbolicate native frames.
        // The replay engine runs per event: no overflow, bounds or exclusivity checks there.
        .target(name: "HeapscopeAnalysis", dependencies: ["HeapscopeFormat", "HeapscopeSymbols"],
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked", "-Ounchecked"])]),
        // The HTML pages' CSS and JS, embedded in the binary (Pages/README.md).
        .target(
            name: "HeapscopeReports", dependencies: ["HeapscopeFormat", "HeapscopeAnalysis"],
            exclude: ["Pages/README.md"],
            resources: ["common", "flamegraph", "table", "diff", "pymalloc"].flatMap { page in
                [Resource.embedInCode("Pages/\(page).css"), .embedInCode("Pages/\(page).js")]
            }
        ),
        .executableTarget(
            name: "heapscope",
            dependencies: [
                "HeapscopeFormat", "HeapscopeAnalysis", "HeapscopeReports", "HeapscopeSystem", "HeapscopeInject",
                "HeapscopeSymbols",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // What the tests share: CaptureWriter (synthetic captures) and fixtures
        // (shared libraries compiled and loaded for a test, the loaded objects).
        .target(name: "HeapscopeTestSupport", dependencies: ["HeapscopeFormat", "HeapscopeSymbols"],
                path: "Tests/HeapscopeTestSupport"),
        // bench/reports.py: writes synthetic captures of any number of events through CaptureWriter.
        .executableTarget(name: "heapscope-bench-capture", dependencies: ["HeapscopeFormat", "HeapscopeTestSupport", "CZstd"],
                          path: "bench/CaptureGenerator"),
        // Fixtures/ holds CPython line tables and the script that dumps them.
        .testTarget(name: "HeapscopeFormatTests", dependencies: ["HeapscopeFormat", "HeapscopeTestSupport", "CZstd"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "HeapscopeSymbolsTests", dependencies: ["HeapscopeSymbols", "HeapscopeTestSupport"]),
        .testTarget(name: "HeapscopeAnalysisTests",
                    dependencies: ["HeapscopeAnalysis", "HeapscopeFormat", "HeapscopeReports", "HeapscopeTestSupport"]),
        // Hybrid stacks: synthetic native captures over objects compiled in the test, and a real capture.
        .testTarget(name: "HybridStacksTests",
                    dependencies: ["HeapscopeAnalysis", "HeapscopeFormat", "HeapscopeSymbols", "HeapscopeTestSupport"]),
        // CZstd: live mode's tests compress a stream to feed it in pieces.
        .testTarget(name: "HeapscopeReportsTests",
                    dependencies: ["HeapscopeReports", "HeapscopeAnalysis", "HeapscopeFormat", "HeapscopeTestSupport", "CZstd"]),
        .testTarget(name: "HeapscopeSystemTests", dependencies: ["HeapscopeSystem"]),
        .testTarget(name: "HeapscopePymallocTests",
                    dependencies: ["HeapscopeAnalysis", "HeapscopeFormat", "HeapscopeReports", "HeapscopeTestSupport"]),
    ]
)
