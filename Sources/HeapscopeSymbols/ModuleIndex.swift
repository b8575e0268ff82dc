// Per-module lookup tables, each built once on first use: libdw answers
// "which CU" and "which function" by walking DIEs, and libdwfl's symbol
// lookup is a linear scan; sorted tables make each query a binary search.
internal import CDwarf

/// Address ranges with a value each, sorted by start; assumed not to overlap.
struct RangeTable<Value> {
    private var entries: [(range: Range<UInt64>, value: Value)]

    init(_ entries: [(range: Range<UInt64>, value: Value)]) {
        self.entries = entries.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    /// The entry with the greatest start at or below `address`, if it covers it.
    func value(containing address: UInt64) -> Value? {
        var low = 0, high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].range.lowerBound <= address { low = mid + 1 } else { high = mid }
        }
        guard low > 0, entries[low - 1].range.contains(address) else { return nil }
        return entries[low - 1].value
    }
}

/// The DWARF side of one module: CUs and, per CU, its functions.
final class DebugInfo {
    let module: DwflModule
    /// Absolute addresses minus this give DWARF addresses.
    let bias: UInt64
    /// Every CU by its ranges; only built when aranges miss an address.
    private var unitsByRange: RangeTable<Dwarf_Die>?
    private var functionsByUnit: [UInt64: RangeTable<Dwarf_Die>] = [:]

    init?(module: DwflModule) {
        guard let bias = module.loadDwarf() else { return nil }
        self.module = module
        self.bias = bias
    }

    /// The CU covering absolute `address`. Objects built by clang, swiftc or
    /// rustc have no .debug_aranges, which is all libdw 0.188 consults.
    func compileUnit(containing address: UInt64) -> CompileUnit? {
        if let die = module.compileUnit(containing: address) { return CompileUnit(die: die) }
        if unitsByRange == nil {
            unitsByRange = RangeTable(module.compileUnits().flatMap { unit in
                unit.ranges.map { (range: $0, value: unit) }
            })
        }
        return unitsByRange?.value(containing: address - bias).map(CompileUnit.init)
    }

    /// The concrete function DIE (DW_TAG_subprogram) covering DWARF address
    /// `address` in `unit`.
    func function(in unit: CompileUnit, containing address: UInt64) -> Dwarf_Die? {
        let key = unit.die.offset
        if let table = functionsByUnit[key] { return table.value(containing: address) }
        var entries: [(range: Range<UInt64>, value: Dwarf_Die)] = []
        collectFunctions(under: unit.die, into: &entries)
        let table = RangeTable(entries)
        functionsByUnit[key] = table
        return table.value(containing: address)
    }

    /// Function definitions sit at CU level or inside namespaces and types
    /// (C++, Rust, Swift); functions nested in functions are not indexed.
    private func collectFunctions(under parent: Dwarf_Die, into entries: inout [(range: Range<UInt64>, value: Dwarf_Die)]) {
        for child in parent.children {
            switch Int(child.tag) {
            case DW_TAG_subprogram:
                for range in child.ranges { entries.append((range, child)) }
            case DW_TAG_namespace, DW_TAG_module, DW_TAG_class_type, DW_TAG_structure_type,
                 DW_TAG_union_type, DW_TAG_enumeration_type:
                collectFunctions(under: child, into: &entries)
            default:
                break
            }
        }
    }

    /// The inlined-subroutine DIEs containing `address` within `function`,
    /// outermost first.
    func inlinedScopes(in function: Dwarf_Die, containing address: UInt64) -> [Dwarf_Die] {
        var inlined: [Dwarf_Die] = []
        var scope = function
        descend: while true {
            for child in scope.children {
                let tag = Int(child.tag)
                guard tag == DW_TAG_inlined_subroutine || tag == DW_TAG_lexical_block
                        || tag == DW_TAG_try_block || tag == DW_TAG_catch_block,
                      child.contains(address)
                else { continue }
                if tag == DW_TAG_inlined_subroutine { inlined.append(child) }
                scope = child
                continue descend
            }
            return inlined
        }
    }
}

/// A module's function symbols, one per address, sorted.
struct SymbolTable {
    private var symbols: [ELFSymbol]

    init(_ all: [ELFSymbol]) {
        // Among aliases (malloc / __libc_malloc) keep the one a reader
        // expects: global over weak over local, sized, no leading underscore.
        func key(_ symbol: ELFSymbol) -> (UInt64, Int, Int, Int) {
            let binding = symbol.binding == STB_GLOBAL ? 0 : symbol.binding == STB_WEAK ? 1 : 2
            let underscore = symbol.name.pointee == CChar(UInt8(ascii: "_")) ? 1 : 0
            return (symbol.address, binding, symbol.isSized ? 0 : 1, underscore)
        }
        let sorted = all.sorted { key($0) < key($1) }
        symbols = []
        symbols.reserveCapacity(sorted.count)
        for symbol in sorted where symbols.last?.address != symbol.address {
            symbols.append(symbol)
        }
    }

    /// The name of the function symbol covering absolute `address`. A
    /// sizeless symbol covers up to the next one, within its section.
    func name(containing address: UInt64) -> String? {
        var low = 0, high = symbols.count
        while low < high {
            let mid = (low + high) / 2
            if symbols[mid].address <= address { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        let symbol = symbols[low - 1]
        guard address < symbol.end else { return nil }
        return String(cString: symbol.name)
    }
}
