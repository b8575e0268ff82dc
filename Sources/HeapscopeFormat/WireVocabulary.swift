// The reader speaks the wire vocabulary of HeapscopeWire (record tags,
// encodings, the summary trailer); whatever imports HeapscopeFormat has it too.
// fuzz/run.sh compiles both folders as one module, which has no HeapscopeWire to import.
#if canImport(HeapscopeWire)
@_exported import HeapscopeWire
#endif
