import ArgumentParser
import HeapscopeAnalysis
import HeapscopeFormat
import HeapscopeReports

extension StackMode: ExpressibleByArgument {}

/// `--stacks hybrid|python|native`, for every report that shows stacks
/// (flamegraph, table, tree, transform, summary, stats). Native captures
/// (`run --native`) default to hybrid stacks; others only have Python ones.
///
///     @OptionGroup var stackOptions: StackOptions
///     ...
///     let resolver = try stackOptions.resolver(for: analysis.tables, header: analysis.header, capture: capture)
///     ... resolver.stack(StackKey(frame: site.frame, nativeFrame: site.nativeFrame)) ...
///     printSymbolWarnings(resolver)   // after the stacks were resolved
struct StackOptions: ParsableArguments {
    @Option(name: .customLong("stacks"), help: ArgumentHelp(
        "Which frames to show: hybrid (native frames, with the Python frames spliced in where the interpreter ran them), python (Python frames only), native (native frames only). Default: hybrid for captures recorded with --native, else python.",
        valueName: "hybrid|python|native"))
    var stacks: StackMode?

    /// The mode to use for a capture. Without native stacks, hybrid falls
    /// back to python (with a note) and native is an error.
    func mode(for header: CaptureHeader, capture: String) throws -> StackMode {
        let hasNative = header.flags.contains(.native)
        guard let stacks else { return StackMode.defaultMode(for: header) }
        guard !hasNative && stacks != .python else { return stacks }
        if stacks == .native {
            printError("heapscope: error: \(capture) has no native stacks (record it with `heapscope run --native`)")
            throw ExitCode.failure
        }
        printError("heapscope: note: \(capture) has no native stacks (record it with `heapscope run --native`): showing Python stacks")
        return .python
    }

    /// A resolver for the capture's stacks in the chosen mode, symbolizing
    /// native frames against the capture's own MAPPINGS.
    func resolver(for tables: CaptureTables, header: CaptureHeader, capture: String) throws -> StackResolver {
        StackResolver(tables: tables, mode: try mode(for: header, capture: capture))
    }
}

/// Prints the symbolizer's warnings (objects missing, unreadable or rebuilt
/// since the capture) once each, to standard error. Call it after resolving
/// the stacks a report shows: objects are only opened when first needed.
func printSymbolWarnings(_ resolver: StackResolver) {
    for warning in resolver.warnings { printError("heapscope: warning: \(warning)") }
}

extension StackOptions {
    /// The report context for a capture: with a resolver when the chosen
    /// stacks (or `mode`, when given) are hybrid or native.
    func context(capture: String, options: ReportOptions, analysis: ViewAnalysis, mode: StackMode? = nil) throws -> ReportContext {
        let mode = try mode ?? self.mode(for: analysis.header, capture: capture)
        let resolver = mode == .python ? nil : StackResolver(tables: analysis.tables, mode: mode)
        return ReportContext(capturePath: capture, options: options, analysis: analysis, resolver: resolver)
    }
}

/// After a report is written: what the report itself warns about (e.g. leaks
/// of a capture that did not trace the Python allocators) and objects that
/// could not be symbolicated, on the terminal too.
func printReportWarnings(_ context: ReportContext) {
    // The "cut short" note is already in the line saying what was written.
    for warning in context.warnings where !warning.hasPrefix("Note: the capture was cut short") { printWarning(warning) }
    if let resolver = context.resolver { printSymbolWarnings(resolver) }
}

func printWarning(_ text: String) {
    let body = text.hasPrefix("Warning: ") ? String(text.dropFirst("Warning: ".count)) : text
    printError("heapscope: warning: \(body)")
}
