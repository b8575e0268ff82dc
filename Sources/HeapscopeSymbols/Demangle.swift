internal import CDwarf
internal import Glibc

/// The readable name of a linker symbol: C++ (Itanium), Rust (legacy and v0)
/// and Swift. Returns the symbol unchanged when it is not mangled, or uses a
/// scheme or a corner of one that cannot be read.
public func demangle(_ symbol: String) -> String {
    if symbol.hasPrefix("_R") {
        return RustV0Demangler.demangle(symbol) ?? symbol
    }
    if symbol.hasPrefix("_Z") {
        if let hashed = rustLegacyCore(symbol), let name = demangleItanium(String(hashed)) {
            return unescapeRustLegacy(name)
        }
        return demangleItanium(symbol) ?? symbol
    }
    if swiftPrefixes.contains(where: symbol.hasPrefix) {
        return demangleSwift(symbol) ?? symbol
    }
    return symbol
}

/// libstdc++'s demangler (the Itanium C++ ABI).
private func demangleItanium(_ symbol: String) -> String? {
    var status: Int32 = 0
    guard let name = __cxa_demangle(symbol, nil, nil, &status), status == 0 else { return nil }
    defer { free(name) }
    return String(cString: name)
}

private let swiftPrefixes = ["$s", "_$s", "$S", "_$S", "$e", "_$e", "_T0"]

/// The Swift runtime's demangler (swift_demangle, exported by libswiftCore).
private func demangleSwift(_ symbol: String) -> String? {
    let utf8 = Array(symbol.utf8)
    guard let name = utf8.withUnsafeBufferPointer({ buffer in
        buffer.withMemoryRebound(to: CChar.self) { swift_demangle($0.baseAddress, $0.count, nil, nil, 0) }
    }) else { return nil }
    defer { free(name) }
    return String(cString: name)
}

/// A Rust legacy symbol is an Itanium nested name whose last component is
/// `h` and 16 hex digits: `_ZN3foo3bar17h0123456789abcdefE`, maybe followed
/// by a suffix such as `.llvm.1234`. Returns the symbol up to the final `E`
/// with the hash component removed.
private func rustLegacyCore(_ symbol: String) -> Substring? {
    guard symbol.hasPrefix("_ZN") else { return nil }
    let bytes = Array(symbol.utf8)
    // "17h" + 16 hex digits + "E"
    let hashLength = 20
    guard bytes.count >= 3 + hashLength else { return nil }
    for start in stride(from: bytes.count - hashLength, through: 3, by: -1) {
        let digits = bytes[(start + 3)..<(start + 19)]
        guard bytes[start] == UInt8(ascii: "1"), bytes[start + 1] == UInt8(ascii: "7"),
              bytes[start + 2] == UInt8(ascii: "h"), bytes[start + 19] == UInt8(ascii: "E"),
              digits.allSatisfy({ isHexDigit($0) })
        else { continue }
        // Keep the closing E of the nested name; drop the hash component.
        let prefix = bytes[..<start] + [UInt8(ascii: "E")]
        return Substring(decoding: prefix, as: UTF8.self)
    }
    return nil
}

/// Rust legacy names escape what Itanium identifiers cannot hold: `$LT$` for
/// `<`, `$u20$` for a space, `..` for `::`, and so on (as rustc-demangle).
private func unescapeRustLegacy(_ name: String) -> String {
    name.split(separator: "::", omittingEmptySubsequences: false)
        .map(unescapeRustComponent)
        .joined(separator: "::")
}

private func unescapeRustComponent(_ component: Substring) -> String {
    var rest = component.hasPrefix("_$") ? component.dropFirst() : component
    var result = ""
    while let first = rest.first {
        if rest.hasPrefix("..") {
            result += "::"
            rest = rest.dropFirst(2)
        } else if first == "$", let end = rest.dropFirst().firstIndex(of: "$"),
                  let character = rustEscape(rest[rest.index(after: rest.startIndex)..<end]) {
            result.append(character)
            rest = rest[rest.index(after: end)...]
        } else {
            result.append(first)
            rest = rest.dropFirst()
        }
    }
    return result
}

private func rustEscape(_ escape: Substring) -> Character? {
    switch escape {
    case "SP": return "@"
    case "BP": return "*"
    case "RF": return "&"
    case "LT": return "<"
    case "GT": return ">"
    case "LP": return "("
    case "RP": return ")"
    case "C": return ","
    default:
        guard escape.hasPrefix("u"), escape.count > 1,
              escape.dropFirst().utf8.allSatisfy({ isHexDigit($0) }),
              let value = UInt32(escape.dropFirst(), radix: 16),
              let scalar = Unicode.Scalar(value),
              scalar.properties.generalCategory != .control
        else { return nil }
        return Character(scalar)
    }
}

/// Lower-case hex, as both Rust schemes write it.
func isHexDigit(_ byte: UInt8) -> Bool {
    (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
}
