/// Several captures' tables as one (reports over a process tree, `--children`):
/// each capture's ids are shifted past those before it, and its outermost
/// frames hang under a frame that names its process, so a report sees one
/// trie of stacks with a root per process.
extension CaptureTables {
    /// What to add to one capture's ids to get their ids in the merged tables.
    public struct Shift: Sendable {
        public var frame: FrameID
        public var thread: ThreadNumber
        public var nativeFrame: NativeFrameID
        /// The frame naming the capture's process: its frame 0 ("no Python frame") becomes this one.
        public var processFrame: FrameID

        public func frame(_ id: FrameID) -> FrameID { id == 0 ? processFrame : id + frame }
        public func thread(_ number: ThreadNumber) -> ThreadNumber { number + thread }
        public func nativeFrame(_ id: NativeFrameID) -> NativeFrameID { id == 0 ? 0 : id + nativeFrame }
    }

    /// Appends `other` under a new frame named `processLabel`, itself under
    /// `parentFrame` (a frame of these tables; 0: outermost). Thread numbers
    /// shift too; each thread's name says its process (`pid`) and its own number.
    public mutating func append(_ other: CaptureTables, processLabel: String, pid: UInt32, under parentFrame: FrameID) -> Shift {
        let stringShift = StringID(strings.count - 1)
        let codeShift = CodeID(codes.count - 1)
        addString(processLabel)
        addCode(CodeObject(name: StringID(strings.count - 1), qualifiedName: StringID(strings.count - 1), fileName: 0, firstLine: 0))
        addFrame(Frame(parent: parentFrame, code: CodeID(codes.count - 1), offset: 0, line: 0))
        let processFrame = FrameID(frames.count - 1)
        // The label's string, code and frame come before `other`'s ids.
        let shift = Shift(frame: processFrame, thread: ThreadNumber(threads.count),
                          nativeFrame: NativeFrameID(nativeFrames.count - 1), processFrame: processFrame)
        for string in other.strings.dropFirst() { addString(string) }
        let string = { (id: StringID) in id == 0 ? 0 : id + stringShift + 1 }
        for var code in other.codes.dropFirst() {
            (code.name, code.qualifiedName, code.fileName) = (string(code.name), string(code.qualifiedName), string(code.fileName))
            addCode(code)
        }
        for var frame in other.frames.dropFirst() {
            frame.parent = shift.frame(frame.parent)
            frame.code += codeShift + 1
            addFrame(frame)
        }
        for info in other.threads {
            let name = info.name ?? (info.number == 1 ? "main" : info.number == 0 ? "before any thread record" : nil)
            setThreadInfo(ThreadNumber(threads.count), osThreadID: info.osThreadID,
                          name: "process \(pid) thread \(info.number)" + (name.map { " (\($0))" } ?? ""))
        }
        let mappingShift = mappingSets.count
        for var node in other.nativeFrames.dropFirst() {
            node.parent = shift.nativeFrame(node.parent)
            if node.mappings >= 0 { node.mappings += mappingShift }
            addNativeFrame(node)
        }
        for set in other.mappingSets { addMappings(set) }
        return shift
    }
}
