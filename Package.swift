// swift-tools-version:6.0
// The module graph follows the pipeline: capture (HeapscopeHooks, HeapscopeTracker)
// -> format (HeapscopeFormat) -> analysis (HeapscopeAnalysis) -> reports
// (HeapscopeReports) -> front-end (heapscope). Only the capture stage touches the
// profiled process; everything after the capture file is plain Swift.
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
        .target(
            name: "HeapscopeTracker",
            dependencies: ["HeapscopeHooks", "HeapscopeFormat", "CZstd"],
            swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked", "-Ounchecked"])]
        ),
        .target(name: "HeapscopeFormat", dependencies: ["CZstd"]),
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
                "HeapscopeFormat", "HeapscopeAnalysis", "HeapscopeReports",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // bench/reports.py: writes synthetic captures of any number of events through CaptureWriter.
        .executableTarget(name: "heapscope-bench-capture", dependencies: ["HeapscopeFormat", "CZstd"],
                          path: "bench/CaptureGenerator"),
        // Fixtures/ holds CPython line tables and the script that dumps them.
        .testTarget(name: "HeapscopeFormatTests", dependencies: ["HeapscopeFormat", "CZstd"], exclude: ["Fixtures"]),
        .testTarget(name: "HeapscopeSymbolsTests", dependencies: ["HeapscopeSymbols"]),
        .testTarget(name: "HeapscopeAnalysisTests", dependencies: ["HeapscopeAnalysis", "HeapscopeFormat", "HeapscopeReports"]),
        // Hybrid stacks: synthetic native captures over objects compiled in the test, and a real capture.
        .testTarget(name: "HybridStacksTests", dependencies: ["HeapscopeAnalysis", "HeapscopeFormat", "HeapscopeSymbols"]),
        // CZstd: live mode's tests compress a stream to feed it in pieces.
        .testTarget(name: "HeapscopeReportsTests", dependencies: ["HeapscopeReports", "HeapscopeAnalysis", "HeapscopeFormat", "CZstd"]),
        .testTarget(name: "HeapscopePymallocTests", dependencies: ["HeapscopeAnalysis", "HeapscopeFormat", "HeapscopeReports"]),
    ]
)
