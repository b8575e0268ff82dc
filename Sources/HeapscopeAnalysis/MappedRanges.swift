import HeapscopeFormat

/// Live mmap ranges. Unlike heap blocks they can be released in part (MUNMAP of
/// a sub-range splits a mapping), so they are kept as sorted, disjoint pieces,
/// each pointing at the mapping it came from. mmap records are rare next to
/// heap ones: a sorted array is enough.
struct MappedRanges {
    struct Mapping {
        var address: UInt64
        /// Serial of its ALLOC: names the mapping among the pieces.
        var serial: UInt64
        /// `SiteTable` id.
        var site: UInt32
        /// As `LiveHeap` tags a block.
        var tag: UInt64
        /// Bytes of the mapping still mapped, over all its pieces.
        var liveBytes: UInt64
    }

    /// What an unmap took away from one mapping.
    struct Released {
        var mapping: Mapping
        var bytes: UInt64
        /// The mapping has no bytes left.
        var isWhole: Bool
    }

    private struct Piece {
        var start: UInt64
        var end: UInt64  // exclusive
        var mapping: UInt64  // serial
    }

    private var pieces: [Piece] = []
    private(set) var mappings: [UInt64: Mapping] = [:]

    /// Adds a mapping. Whatever it overlaps was replaced (as mmap with MAP_FIXED
    /// does) and is returned.
    mutating func map(_ mapping: Mapping, length: UInt64) -> [Released] {
        guard length > 0 else { return [] }
        let end = Self.end(mapping.address, length)
        let released = unmap(mapping.address, length: length)
        let index = firstPiece(endingAfter: mapping.address)
        pieces.insert(Piece(start: mapping.address, end: end, mapping: mapping.serial), at: index)
        var stored = mapping
        stored.liveBytes = end - mapping.address
        mappings[mapping.serial] = stored
        return released
    }

    /// Removes `[address, address + length)` from every mapping it covers; returns what went.
    mutating func unmap(_ address: UInt64, length: UInt64) -> [Released] {
        guard length > 0 else { return [] }
        var released: [Released] = []
        let end = Self.end(address, length)
        var index = firstPiece(endingAfter: address)
        while index < pieces.count && pieces[index].start < end {
            let piece = pieces[index]
            let bytes = min(piece.end, end) - max(piece.start, address)
            var remaining: [Piece] = []
            if piece.start < address { remaining.append(Piece(start: piece.start, end: address, mapping: piece.mapping)) }
            if piece.end > end { remaining.append(Piece(start: end, end: piece.end, mapping: piece.mapping)) }
            pieces.replaceSubrange(index...index, with: remaining)
            index += remaining.count

            var mapping = mappings[piece.mapping]!
            mapping.liveBytes -= bytes
            let isWhole = mapping.liveBytes == 0
            mappings[piece.mapping] = isWhole ? nil : mapping
            released.append(Released(mapping: mapping, bytes: bytes, isWhole: isWhole))
        }
        return released
    }

    /// Index of the first piece whose end lies after `address` (pieces are disjoint,
    /// so their ends are sorted like their starts).
    private func firstPiece(endingAfter address: UInt64) -> Int {
        var low = 0
        var high = pieces.count
        while low < high {
            let middle = (low + high) / 2
            if pieces[middle].end <= address { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// End of a range, clamped at the top of the address space.
    private static func end(_ address: UInt64, _ length: UInt64) -> UInt64 {
        let (end, overflow) = address.addingReportingOverflow(length)
        return overflow ? .max : end
    }
}
