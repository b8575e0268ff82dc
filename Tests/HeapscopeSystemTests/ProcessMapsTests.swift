import Glibc
import Testing
import HeapscopeSystem

/// /proc/<pid>/maps as attach reads it, checked against this test process.
@Suite struct ProcessMapsTests {
    @Test func aLineWithSpacesInItsPath() throws {
        let region = try #require(MappedRegion(line: "7f00a000-7f00c000 r-xp 00001000 fe:00 1234     /tmp/my lib (x).so (deleted)"))
        #expect(region.range == 0x7F00_A000..<0x7F00_C000)
        #expect(region.isExecutable)
        #expect(region.path == "/tmp/my lib (x).so (deleted)")
        #expect(region.fileName == "my lib (x).so (deleted)")
    }

    @Test func anonymousMemoryAndBadLines() throws {
        let anonymous = try #require(MappedRegion(line: "55d0c000-55d2d000 rw-p 00000000 00:00 0"))
        #expect(anonymous.path == "")
        #expect(!anonymous.isExecutable)
        #expect(MappedRegion(line: "") == nil)
        #expect(MappedRegion(line: "zzzz-1000 r-xp 0 0:0 0 /x") == nil)
        #expect(MappedRegion(line: "2000-1000 r-xp 0 0:0 0 /x") == nil)   // end before start
    }

    /// The executable region holding one of libc's functions is libc's file;
    /// the region holding a stack variable is writable and not executable.
    @Test func thisProcessMapsAsTheSystemSays() throws {
        let regions = processMaps("self")
        let getpidAddress = UInt64(UInt(bitPattern: unsafeBitCast(getpid as @convention(c) () -> pid_t, to: UnsafeRawPointer.self)))
        let code = try #require(regions.first { $0.range.contains(getpidAddress) })
        #expect(code.isExecutable)
        #expect(code.fileName.hasPrefix("libc"))
        var local = 0
        let stackAddress = withUnsafeMutablePointer(to: &local) { UInt64(UInt(bitPattern: $0)) }
        let stack = try #require(regions.first { $0.range.contains(stackAddress) })
        #expect(stack.permissions.hasPrefix("rw"))
        #expect(!stack.isExecutable)
        #expect(processMaps("999999999").isEmpty)
    }
}
