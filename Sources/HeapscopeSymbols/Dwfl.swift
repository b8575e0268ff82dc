// Thin typed wrappers over elfutils libdwfl/libdw: just what symbolication
// needs, with C conventions (out-parameters, status codes) turned into
// optionals and arrays. Nothing here knows about captures.
internal import CDwarf
internal import Glibc

/// A libdwfl session. Offline (symbolication): modules are reported from their
/// files at the bias a capture recorded; debug info is found the standard way
/// (build-id links under /usr/lib/debug, <path>.debug, .gnu_debuglink).
/// Live (attach): the modules a running process has mapped, from /proc.
final class DwflSession {
    let handle: OpaquePointer
    // libdwfl keeps the pointer to the callbacks, so they must outlive it.
    private let callbacks: UnsafeMutablePointer<Dwfl_Callbacks>

    convenience init?() {
        self.init(callbacks: Dwfl_Callbacks(
            find_elf: dwfl_build_id_find_elf,
            find_debuginfo: dwfl_standard_find_debuginfo,
            section_address: dwfl_offline_section_address,
            debuginfo_path: nil))
        dwfl_report_begin(handle)
    }

    /// Every object process `pid` has mapped, at its load address, with the
    /// symbol tables of the files themselves (no debug files are looked for).
    static func process(_ pid: Int32) throws(DwflError) -> DwflSession {
        guard let session = DwflSession(callbacks: Dwfl_Callbacks(
            find_elf: dwfl_linux_proc_find_elf,
            find_debuginfo: { _, _, _, _, _, _, _, _ in -1 },
            section_address: nil,
            debuginfo_path: nil))
        else { throw .last }
        dwfl_report_begin(session.handle)
        let rc = dwfl_linux_proc_report(session.handle, pid)
        dwfl_report_end(session.handle, nil, nil)
        // rc > 0: an errno (reading /proc/<pid>/maps).
        if rc > 0 { throw DwflError(message: String(cString: strerror(rc))) }
        if rc < 0 { throw .last }
        return session
    }

    /// The reported modules with their names (for a process: the mapped paths).
    func modules() -> [(name: String, module: DwflModule)] {
        var found: [(name: String, module: DwflModule)] = []
        withUnsafeMutablePointer(to: &found) { list in
            _ = dwfl_getmodules(handle, { module, _, name, _, list in
                guard let module, let name else { return Int32(DWARF_CB_OK) }
                list!.assumingMemoryBound(to: [(name: String, module: DwflModule)].self).pointee
                    .append((String(cString: name), DwflModule(handle: module)))
                return Int32(DWARF_CB_OK)
            }, list, 0)
        }
        return found
    }

    private init?(callbacks value: Dwfl_Callbacks) {
        callbacks = .allocate(capacity: 1)
        callbacks.initialize(to: value)
        guard let handle = dwfl_begin(callbacks) else {
            callbacks.deallocate()
            return nil
        }
        self.handle = handle
    }

    deinit {
        dwfl_end(handle)
        callbacks.deallocate()
    }

    /// Reports the ELF file at `path` so that its file address 0 sits at
    /// `bias` (add_p_vaddr: also right for prelinked objects).
    func report(path: String, bias: UInt64) throws(DwflError) -> DwflModule {
        guard let module = dwfl_report_elf(handle, path, path, -1, bias, true) else { throw .last }
        return DwflModule(handle: module)
    }

    func endReporting() {
        dwfl_report_end(handle, nil, nil)
    }
}

struct DwflError: Error {
    let message: String

    /// The calling thread's last libdwfl error.
    static var last: DwflError {
        DwflError(message: dwfl_errmsg(-1).map { String(cString: $0) } ?? "unknown libdwfl error")
    }
}

/// One reported module. Valid as long as its session.
struct DwflModule {
    let handle: OpaquePointer

    /// The GNU build id of the file that was opened, if it has one.
    var buildID: [UInt8]? {
        var bits: UnsafePointer<UInt8>?
        var vaddr: GElf_Addr = 0
        let length = dwfl_module_build_id(handle, &bits, &vaddr)
        guard length > 0, let bits else { return nil }
        return Array(UnsafeBufferPointer(start: bits, count: Int(length)))
    }

    /// Loads the module's DWARF (found through the debuginfo callbacks) and
    /// returns the bias from DWARF addresses to absolute ones; nil without.
    func loadDwarf() -> UInt64? {
        var bias: Dwarf_Addr = 0
        guard dwfl_module_getdwarf(handle, &bias) != nil else { return nil }
        return bias
    }

    /// The compile unit covering absolute `address`, through .debug_aranges.
    func compileUnit(containing address: UInt64) -> Dwarf_Die? {
        var bias: Dwarf_Addr = 0
        return dwfl_module_addrdie(handle, address, &bias)?.pointee
    }

    /// Every compile unit, for objects whose aranges do not cover them all.
    func compileUnits() -> [Dwarf_Die] {
        var units: [Dwarf_Die] = []
        var bias: Dwarf_Addr = 0
        var unit = dwfl_module_nextcu(handle, nil, &bias)
        while let current = unit {
            units.append(current.pointee)
            unit = dwfl_module_nextcu(handle, current, &bias)
        }
        return units
    }

    /// The function symbols of the best symbol table libdwfl found (.symtab
    /// of the file or its debug file, else .dynsym), at absolute addresses.
    func functionSymbols() -> [ELFSymbol] {
        let count = dwfl_module_getsymtab(handle)
        guard count > 0 else { return [] }
        var symbols: [ELFSymbol] = []
        for index in 1..<count {
            var symbol = GElf_Sym()
            var address: GElf_Addr = 0
            var section: GElf_Word = 0
            var elf: OpaquePointer?
            var bias: Dwarf_Addr = 0
            guard let name = dwfl_module_getsym_info(handle, index, &symbol, &address, &section, &elf, &bias),
                  name.pointee != 0
            else { continue }
            let type = Int32(symbol.st_info & 0xF)
            // -1: a symbol in a non-allocated section.
            guard type == STT_FUNC || type == STT_GNU_IFUNC,
                  section != SHN_UNDEF, section != GElf_Word.max
            else { continue }
            // A sizeless symbol (hand-written assembly) runs to the next
            // symbol, but not past its section: `_init` must not cover .plt.
            var end = address + symbol.st_size
            if symbol.st_size == 0 {
                var header = GElf_Shdr()
                guard let scn = elf_getscn(elf, Int(section)), gelf_getshdr(scn, &header) != nil else { continue }
                end = header.sh_addr + header.sh_size + bias
            }
            symbols.append(ELFSymbol(
                address: address, end: end, isSized: symbol.st_size > 0,
                binding: Int32(symbol.st_info >> 4), name: name))
        }
        return symbols
    }
}

struct ELFSymbol {
    var address: UInt64
    var end: UInt64
    var isSized: Bool
    var binding: Int32
    /// Owned by libelf; lives as long as the session.
    var name: UnsafePointer<CChar>
}

extension Dwarf_Die {
    var tag: Int32 {
        var die = self
        return dwarf_tag(&die)
    }

    var offset: UInt64 {
        var die = self
        return dwarf_dieoffset(&die)
    }

    /// The name to show for a function DIE, demangled. The linkage name when
    /// it is mangled (C++, Rust, Swift: it is the qualified name), else
    /// DW_AT_name: an unmangled linkage name is a C asm label, an alias
    /// such as __GI___libc_malloc. Follows DW_AT_abstract_origin and
    /// DW_AT_specification, so it works for inlined instances and
    /// out-of-line C++ member definitions.
    var functionName: String? {
        let linkageName = string(DW_AT_linkage_name) ?? string(DW_AT_MIPS_linkage_name)
        if let linkageName {
            let demangled = demangle(linkageName)
            if demangled != linkageName { return demangled }
        }
        return string(DW_AT_name) ?? linkageName
    }

    private func string(_ name: Int) -> String? {
        var die = self
        var attribute = Dwarf_Attribute()
        guard dwarf_attr_integrate(&die, UInt32(name), &attribute) != nil,
              let string = dwarf_formstring(&attribute)
        else { return nil }
        return String(cString: string)
    }

    /// The address ranges (DWARF addresses) the DIE covers.
    var ranges: [Range<UInt64>] {
        var die = self
        var ranges: [Range<UInt64>] = []
        var base: Dwarf_Addr = 0, start: Dwarf_Addr = 0, end: Dwarf_Addr = 0
        var offset = dwarf_ranges(&die, 0, &base, &start, &end)
        while offset > 0 {
            if start < end { ranges.append(start..<end) }
            offset = dwarf_ranges(&die, offset, &base, &start, &end)
        }
        return ranges
    }

    func contains(_ address: UInt64) -> Bool {
        var die = self
        return dwarf_haspc(&die, address) == 1
    }

    /// An unsigned attribute of the DIE itself (e.g. DW_AT_call_line).
    func unsigned(_ name: Int) -> UInt64? {
        var die = self
        var attribute = Dwarf_Attribute()
        var value: Dwarf_Word = 0
        guard dwarf_attr(&die, UInt32(name), &attribute) != nil,
              dwarf_formudata(&attribute, &value) == 0
        else { return nil }
        return value
    }

    var children: DieChildren { DieChildren(parent: self) }
}

struct DieChildren: Sequence, IteratorProtocol {
    private var pending: Dwarf_Die?

    init(parent: Dwarf_Die) {
        var parent = parent
        var child = Dwarf_Die()
        pending = dwarf_child(&parent, &child) == 0 ? child : nil
    }

    mutating func next() -> Dwarf_Die? {
        guard var current = pending else { return nil }
        var sibling = Dwarf_Die()
        pending = dwarf_siblingof(&current, &sibling) == 0 ? sibling : nil
        return current
    }
}

/// A compile unit's line table and file table.
struct CompileUnit {
    let die: Dwarf_Die

    /// Source position of DWARF address `address` from the line table.
    func location(of address: UInt64) -> (file: String?, line: Int)? {
        var die = self.die
        guard let row = dwarf_getsrc_die(&die, address) else { return nil }
        var line: Int32 = 0
        // Line 0: code with no source position (its file entry means nothing).
        guard dwarf_lineno(row, &line) == 0, line > 0 else { return nil }
        return (dwarf_linesrc(row, nil, nil).map { String(cString: $0) }, Int(line))
    }

    /// Entry `index` of the file table (DW_AT_call_file / DW_AT_decl_file).
    func file(at index: UInt64) -> String? {
        var die = self.die
        var files: OpaquePointer?
        var count = 0
        guard dwarf_getsrcfiles(&die, &files, &count) == 0, let files, index < count else { return nil }
        return dwarf_filesrc(files, Int(index), nil, nil).map { String(cString: $0) }
    }
}
