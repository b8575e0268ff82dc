/// Rust's v0 symbol mangling (RFC 2603), printed as rustc-demangle prints it
/// in its alternate form (`{:#}`: no crate hashes, no const type suffixes).
/// Covers paths, impl paths, closures and shims, generic arguments, types,
/// lifetimes and binders, dyn traits and integer/bool/char consts. Punycode
/// identifiers, encoding versions and the newer const forms (str, struct,
/// array, reference consts) are not supported: `demangle` returns nil.
struct RustV0Demangler {
    private struct Unsupported: Error {}

    private let bytes: [UInt8]
    private var position = 0
    private var output = ""
    /// Off while walking parts that are parsed but not shown (an impl's own path).
    private var printing = true
    private var depth = 0
    private var boundLifetimes = 0

    // Backreferences can nest exponentially or loop: bound both.
    private static let maxDepth = 200
    private static let maxOutput = 16 * 1024

    static func demangle(_ symbol: String) -> String? {
        var bytes = Array(symbol.utf8)
        guard bytes.starts(with: "_R".utf8) else { return nil }
        bytes.removeFirst(2)
        // A vendor suffix (".llvm.1234" after LTO, ".0" for statics) is not mangled.
        var suffix = ""
        if let cut = bytes.firstIndex(where: { !($0.isASCIIAlphanumeric || $0 == UInt8(ascii: "_")) }) {
            suffix = String(decoding: bytes[cut...], as: UTF8.self)
            if suffix.hasPrefix(".llvm.") { suffix = "" }
            bytes.removeSubrange(cut...)
        }
        var demangler = RustV0Demangler(bytes: bytes)
        do {
            try demangler.path(inValue: true)
            // The instantiating crate, if any, is not shown.
            if demangler.position < bytes.count {
                try demangler.skipping { try $0.path(inValue: false) }
            }
            guard demangler.position == bytes.count else { return nil }
        } catch {
            return nil
        }
        return demangler.output + suffix
    }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    // MARK: Grammar

    private mutating func path(inValue: Bool) throws {
        try enter()
        defer { depth -= 1 }
        let tag = try next()
        switch tag {
        case UInt8(ascii: "C"):  // crate root
            _ = try disambiguator()
            print(try identifier())
        case UInt8(ascii: "N"):  // nested path in a namespace
            let namespace = try next()
            guard namespace.isASCIILetter else { throw Unsupported() }
            try path(inValue: inValue)
            let index = try disambiguator()
            let name = try identifier()
            if namespace.isASCIIUppercase {
                // Special namespaces: closures, shims.
                let kind = namespace == UInt8(ascii: "C") ? "closure"
                    : namespace == UInt8(ascii: "S") ? "shim" : String(UnicodeScalar(namespace))
                print("::{\(kind)\(name.isEmpty ? "" : ":" + name)#\(index)}")
            } else if !name.isEmpty {
                print("::" + name)
            }
        case UInt8(ascii: "M"), UInt8(ascii: "X"), UInt8(ascii: "Y"):  // <T>, <T as Trait>
            if tag != UInt8(ascii: "Y") {
                _ = try disambiguator()
                try skipping { try $0.path(inValue: false) }
            }
            print("<")
            try type()
            if tag != UInt8(ascii: "M") {
                print(" as ")
                try path(inValue: false)
            }
            print(">")
        case UInt8(ascii: "I"):  // generic arguments
            try path(inValue: inValue)
            print(inValue ? "::<" : "<")
            try list(", ") { try $0.genericArgument() }
            print(">")
        case UInt8(ascii: "B"):
            try backreference { try $0.path(inValue: inValue) }
        default:
            throw Unsupported()
        }
    }

    private mutating func genericArgument() throws {
        if eat("L") {
            try lifetime(try integer62())
        } else if eat("K") {
            try constant()
        } else {
            try type()
        }
    }

    private mutating func type() throws {
        let tag = try next()
        if let basic = Self.basicType(tag) {
            print(basic)
            return
        }
        try enter()
        defer { depth -= 1 }
        switch tag {
        case UInt8(ascii: "R"), UInt8(ascii: "Q"):  // &T, &mut T
            print("&")
            if eat("L") {
                let index = try integer62()
                if index != 0 {
                    try lifetime(index)
                    print(" ")
                }
            }
            if tag == UInt8(ascii: "Q") { print("mut ") }
            try type()
        case UInt8(ascii: "P"), UInt8(ascii: "O"):  // *const T, *mut T
            print(tag == UInt8(ascii: "P") ? "*const " : "*mut ")
            try type()
        case UInt8(ascii: "A"), UInt8(ascii: "S"):  // [T; N], [T]
            print("[")
            try type()
            if tag == UInt8(ascii: "A") {
                print("; ")
                try constant()
            }
            print("]")
        case UInt8(ascii: "T"):  // tuple
            print("(")
            let count = try list(", ") { try $0.type() }
            print(count == 1 ? ",)" : ")")
        case UInt8(ascii: "F"):
            try binder { try $0.functionSignature() }
        case UInt8(ascii: "D"):  // dyn Trait + 'a
            print("dyn ")
            try binder { try $0.list(" + ") { try $0.dynTrait() } }
            guard eat("L") else { throw Unsupported() }
            let index = try integer62()
            if index != 0 {
                print(" + ")
                try lifetime(index)
            }
        case UInt8(ascii: "B"):
            try backreference { try $0.type() }
        default:
            position -= 1
            try path(inValue: false)
        }
    }

    private mutating func functionSignature() throws {
        let isUnsafe = eat("U")
        var abi: String?
        if eat("K") {
            if eat("C") {
                abi = "C"
            } else {
                let name = try identifier()
                guard !name.isEmpty else { throw Unsupported() }
                abi = String(name.map { $0 == "_" ? "-" : $0 })  // `-` is mangled as `_`
            }
        }
        if isUnsafe { print("unsafe ") }
        if let abi { print("extern \"\(abi)\" ") }
        print("fn(")
        try list(", ") { try $0.type() }
        print(")")
        if !eat("u") {  // `-> ()` is not shown
            print(" -> ")
            try type()
        }
    }

    private mutating func dynTrait() throws {
        var open = try pathMaybeOpeningGenerics()
        while eat("p") {  // associated type binding
            print(open ? ", " : "<")
            open = true
            print(try identifier() + " = ")
            try type()
        }
        if open { print(">") }
    }

    /// A trait path whose generic argument list is left open, so that the
    /// associated-type bindings of a dyn trait can join it.
    private mutating func pathMaybeOpeningGenerics() throws -> Bool {
        if eat("B") {
            var open = false
            try backreference { open = try $0.pathMaybeOpeningGenerics() }
            return open
        }
        if eat("I") {
            try path(inValue: false)
            print("<")
            try list(", ") { try $0.genericArgument() }
            return true
        }
        try path(inValue: false)
        return false
    }

    private mutating func constant() throws {
        let tag = try next()
        try enter()
        defer { depth -= 1 }
        switch tag {
        case UInt8(ascii: "p"):
            print("_")
        case UInt8(ascii: "h"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "y"),
             UInt8(ascii: "o"), UInt8(ascii: "j"):
            print(try hexNumber())
        case UInt8(ascii: "a"), UInt8(ascii: "s"), UInt8(ascii: "l"), UInt8(ascii: "x"),
             UInt8(ascii: "n"), UInt8(ascii: "i"):
            if eat("n") { print("-") }
            print(try hexNumber())
        case UInt8(ascii: "b"):
            switch try hexValue() {
            case 0: print("false")
            case 1: print("true")
            default: throw Unsupported()
            }
        case UInt8(ascii: "c"):
            guard let value = UInt32(exactly: try hexValue()), let scalar = Unicode.Scalar(value) else {
                throw Unsupported()
            }
            print("'" + Self.escaped(scalar) + "'")
        case UInt8(ascii: "B"):
            try backreference { try $0.constant() }
        default:
            throw Unsupported()
        }
    }

    private mutating func lifetime(_ index: UInt64) throws {
        guard printing else { return }  // bound lifetimes are only counted when printing
        guard index != 0 else { return print("'_") }
        guard index <= UInt64(boundLifetimes) else { throw Unsupported() }
        let depth = boundLifetimes - Int(index)
        print(depth < 26 ? "'" + String(UnicodeScalar(UInt8(ascii: "a") + UInt8(depth))) : "'_\(depth)")
    }

    /// `for<'a, ...>` lifetimes bound around `body`.
    private mutating func binder(_ body: (inout Self) throws -> Void) throws {
        let count = try optionalInteger62("G")
        guard printing else { return try body(&self) }
        guard count < 1000 else { throw Unsupported() }
        if count > 0 {
            print("for<")
            for i in 0..<Int(count) {
                if i > 0 { print(", ") }
                boundLifetimes += 1
                try lifetime(1)
            }
            print("> ")
        }
        try body(&self)
        boundLifetimes -= Int(count)
    }

    // MARK: Lexical pieces

    /// A backreference: the same production, parsed again at an earlier
    /// position (relative to the symbol after `_R`). Its `B` is consumed.
    private mutating func backreference(_ body: (inout Self) throws -> Void) throws {
        let tagPosition = position - 1
        let target = try integer62()
        guard target < UInt64(tagPosition) else { throw Unsupported() }
        guard printing else { return }  // nothing to show, and no need to re-parse
        let resume = position
        position = Int(target)
        try body(&self)
        position = resume
    }

    private mutating func skipping(_ body: (inout Self) throws -> Void) throws {
        let wasPrinting = printing
        printing = false
        defer { printing = wasPrinting }
        try body(&self)
    }

    /// Elements up to the closing `E`, separated by `separator`; their count.
    @discardableResult
    private mutating func list(_ separator: String, _ element: (inout Self) throws -> Void) throws -> Int {
        var count = 0
        while !eat("E") {
            if count > 0 { print(separator) }
            try element(&self)
            count += 1
        }
        return count
    }

    private mutating func disambiguator() throws -> UInt64 {
        try optionalInteger62("s")
    }

    /// A length-prefixed name; its `s` disambiguator, if any, is parsed by the caller.
    private mutating func identifier() throws -> String {
        if eat("u") { throw Unsupported() }  // Punycode
        guard let first = peek(), first.isASCIIDigit else { throw Unsupported() }
        position += 1
        var length = Int(first - UInt8(ascii: "0"))
        if length != 0 {
            while let digit = peek(), digit.isASCIIDigit {
                position += 1
                let (scaled, overflow) = length.multipliedReportingOverflow(by: 10)
                guard !overflow, scaled <= bytes.count else { throw Unsupported() }
                length = scaled + Int(digit - UInt8(ascii: "0"))
            }
        }
        _ = eat("_")  // separates a name starting with a digit or `_`
        guard length <= bytes.count - position else { throw Unsupported() }
        defer { position += length }
        return String(decoding: bytes[position..<(position + length)], as: UTF8.self)
    }

    /// Base-62 digits closed by `_`; `_` alone is 0, otherwise the value + 1.
    private mutating func integer62() throws -> UInt64 {
        if eat("_") { return 0 }
        var value: UInt64 = 0
        while !eat("_") {
            let byte = try next()
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit = byte - UInt8(ascii: "A") + 36
            default: throw Unsupported()
            }
            let (scaled, overflow1) = value.multipliedReportingOverflow(by: 62)
            let (sum, overflow2) = scaled.addingReportingOverflow(UInt64(digit))
            guard !overflow1, !overflow2 else { throw Unsupported() }
            value = sum
        }
        guard value < UInt64.max else { throw Unsupported() }
        return value + 1
    }

    /// 0 when `tag` is absent, else the base-62 number after it + 1.
    private mutating func optionalInteger62(_ tag: Unicode.Scalar) throws -> UInt64 {
        guard eat(tag) else { return 0 }
        let value = try integer62()
        guard value < UInt64.max else { throw Unsupported() }
        return value + 1
    }

    /// Lower-case hex digits closed by `_`.
    private mutating func hexDigits() throws -> Substring {
        let start = position
        while !eat("_") {
            guard isHexDigit(try next()) else { throw Unsupported() }
        }
        return Substring(decoding: bytes[start..<(position - 1)], as: UTF8.self)
    }

    private mutating func hexValue() throws -> UInt64 {
        let digits = try hexDigits()
        guard let value = digits.isEmpty ? 0 : UInt64(digits, radix: 16) else { throw Unsupported() }
        return value
    }

    /// Decimal when it fits 64 bits (as rustc-demangle), else hex.
    private mutating func hexNumber() throws -> String {
        let digits = try hexDigits()
        if digits.isEmpty { return "0" }
        if let value = UInt64(digits, radix: 16) { return String(value) }
        return "0x" + digits
    }

    private func peek() -> UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    private mutating func next() throws -> UInt8 {
        guard let byte = peek() else { throw Unsupported() }
        position += 1
        return byte
    }

    private mutating func eat(_ scalar: Unicode.Scalar) -> Bool {
        guard peek() == UInt8(ascii: scalar) else { return false }
        position += 1
        return true
    }

    private mutating func enter() throws {
        depth += 1
        guard depth <= Self.maxDepth else { throw Unsupported() }
    }

    private mutating func print(_ text: String) {
        guard printing else { return }
        output += text
    }

    // MARK: Tables

    private static func basicType(_ tag: UInt8) -> String? {
        switch UnicodeScalar(tag) {
        case "a": "i8"
        case "b": "bool"
        case "c": "char"
        case "d": "f64"
        case "e": "str"
        case "f": "f32"
        case "h": "u8"
        case "i": "isize"
        case "j": "usize"
        case "l": "i32"
        case "m": "u32"
        case "n": "i128"
        case "o": "u128"
        case "s": "i16"
        case "t": "u16"
        case "u": "()"
        case "v": "..."
        case "x": "i64"
        case "y": "u64"
        case "z": "!"
        case "p": "_"
        default: nil
        }
    }

    /// A char constant as Rust's `escape_debug` writes it.
    private static func escaped(_ scalar: Unicode.Scalar) -> String {
        switch scalar {
        case "\t": "\\t"
        case "\r": "\\r"
        case "\n": "\\n"
        case "\0": "\\0"
        case "'": "\\'"
        case "\\": "\\\\"
        default:
            scalar.properties.generalCategory == .control
                ? "\\u{\(String(scalar.value, radix: 16))}" : String(scalar)
        }
    }
}

private extension UInt8 {
    var isASCIIDigit: Bool { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self) }
    var isASCIIUppercase: Bool { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self) }
    var isASCIILetter: Bool { isASCIIUppercase || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) }
    var isASCIIAlphanumeric: Bool { isASCIILetter || isASCIIDigit }
}
