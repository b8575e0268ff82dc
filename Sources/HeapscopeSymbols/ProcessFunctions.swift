// The functions `heapscope attach` calls in a running process (dlopen, the
// tracker's entry points), found by name in the symbol tables of the objects
// the process has mapped, at their addresses there.

internal import Glibc

public struct ProcessFunctions {
    private let session: DwflSession
    private let modules: [(name: String, module: DwflModule)]

    /// Reads /proc/<pid>/maps and the symbol tables of the files mapped.
    public init(pid: Int32) throws(ProcessFunctionsError) {
        do {
            session = try DwflSession.process(pid)
        } catch {
            throw ProcessFunctionsError(message: error.message)
        }
        modules = session.modules()
    }

    /// The address of the function `name` defined in the first object, in
    /// address order, whose path `objects` accepts.
    public func address(of name: String, inObjectsWhere objects: (String) -> Bool) -> UInt64? {
        for (path, module) in modules where objects(path) {
            if let symbol = module.functionSymbols().first(where: { strcmp($0.name, name) == 0 }) {
                return symbol.address
            }
        }
        return nil
    }
}

public struct ProcessFunctionsError: Error {
    public let message: String
}
