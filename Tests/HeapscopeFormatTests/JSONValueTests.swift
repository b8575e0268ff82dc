import Testing
import HeapscopeFormat

@Suite struct JSONValueTests {
    @Test func parsesAndWritesBack() throws {
        let text = #"{"a":[1,-2,3.5,true,false,null],"b":"x\"\\\n\u00e9\ud83d\ude00","c":{}}"#
        let value = try JSONValue.parse(text)
        #expect(value["a"] == .array([.int(1), .int(-2), .double(3.5), .bool(true), .bool(false), .null]))
        #expect(value["b"] == .string("x\"\\\né😀"))
        #expect(try JSONValue.parse(value.serialized()) == value)
        #expect(try JSONValue.parse(value.serialized(indent: 2)) == value)
    }

    @Test func rejectsBadJSON() {
        for text in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "1 2", String(repeating: "[", count: 10_000)] {
            #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(text) }
        }
    }
}
