import HeapscopeSymbols
import Testing

@Suite struct DemangleTests {
    @Test func plainNamesAndUnknownSchemesAreKept() {
        #expect(demangle("malloc") == "malloc")
        #expect(demangle("_PyObject_Malloc") == "_PyObject_Malloc")
        #expect(demangle("_Zinvalid") == "_Zinvalid")
        #expect(demangle("$sinvalid") == "$sinvalid")
    }

    @Test(arguments: [
        ("_Z3foov", "foo()"),
        ("_ZN4demo4PoolIdE4makeEm", "demo::Pool<double>::make(unsigned long)"),
        ("_ZNSt6vectorIiSaIiEE9push_backERKi", "std::vector<int, std::allocator<int> >::push_back(int const&)"),
        ("_Z3barv.cold", "bar() [clone .cold]"),
    ])
    func cxx(mangled: String, expected: String) {
        #expect(demangle(mangled) == expected)
    }

    @Test(arguments: [
        ("_ZN4core3fmt5write17h0123456789abcdefE", "core::fmt::write"),
        ("_ZN3std2rt10lang_start17h5e4c7a2b9f0d1c3aE.llvm.1234567", "std::rt::lang_start"),
        ("_ZN66_$LT$alloc..vec..Vec$LT$T$GT$$u20$as$u20$core..ops..drop..Drop$GT$4drop17h1234567890abcdefE",
         "<alloc::vec::Vec<T> as core::ops::drop::Drop>::drop"),
        ("_ZN5alloc5slice29_$LT$impl$u20$$u5b$T$u5d$$GT$6to_vec17hfedcba9876543210E",
         "alloc::slice::<impl [T]>::to_vec"),
    ])
    func rustLegacy(mangled: String, expected: String) {
        #expect(demangle(mangled) == expected)
    }

    /// Expectations from rustc-demangle's test suite (alternate form), plus
    /// function pointers, references and tuples.
    @Test(arguments: [
        ("_RNvC6_123foo3bar", "123foo::bar"),
        ("_RNCNCNgCs6DXkGYLi8lr_2cc5spawn00B5_", "cc::spawn::{closure#0}::{closure#0}"),
        ("_RNCINkXs25_NgCsbmNqQUJIY6D_4core5sliceINyB9_4IterhENuNgNoBb_4iter8iterator8Iterator9rpositionNCNgNpB9_6memchr7memrchrs_0E0Bb_",
         "<core::slice::Iter<u8> as core::iter::iterator::Iterator>::rposition::<core::slice::memchr::memrchr::{closure#1}>::{closure#0}"),
        ("_RINbNbCskIICzLVDPPb_5alloc5alloc8box_freeDINbNiB4_5boxed5FnBoxuEp6OutputuEL_ECs1iopQbuBiw2_3std",
         "alloc::alloc::box_free::<dyn alloc::boxed::FnBox<(), Output = ()>>"),
        ("_RMC0INtC8arrayvec8ArrayVechKj7b_E", "<arrayvec::ArrayVec<u8, 123>>"),
        ("_RMCs4fqI2P2rA04_13const_genericINtB0_6SignedKanb_E", "<const_generic::Signed<-11>>"),
        ("_RMCs4fqI2P2rA04_13const_genericINtB0_4BoolKb1_E", "<const_generic::Bool<true>>"),
        ("_RMCs4fqI2P2rA04_13const_genericINtB0_4CharKca_E", "<const_generic::Char<'\\n'>>"),
        ("_RMCs4fqI2P2rA04_13const_genericINtB0_4CharKc2202_E", "<const_generic::Char<'∂'>>"),
        ("_RNvNvMCs4fqI2P2rA04_13const_genericINtB4_3FooKpE3foo3FOO", "<const_generic::Foo<_>>::foo::FOO"),
        ("_RNvC9backtrace3foo.llvm.A5310EB9", "backtrace::foo"),
        ("_RNvNtNtNtNtCs92dm3009vxr_4rand4rngs7adapter9reseeding4fork23FORK_HANDLER_REGISTERED.0.0",
         "rand::rngs::adapter::reseeding::fork::FORK_HANDLER_REGISTERED.0.0"),
        ("_RINvNtC3std3mem8align_ofdE", "std::mem::align_of::<f64>"),
        ("_RINvC3foo3barFG_RL0_hEuE", "foo::bar::<for<'a> fn(&'a u8)>"),
        ("_RINvC3foo3barFUKCjEmE", "foo::bar::<unsafe extern \"C\" fn(usize) -> u32>"),
        ("_RINvC3foo3barTRShQeEE", "foo::bar::<(&[u8], &mut str)>"),
        ("_RINvC3foo3barTjEE", "foo::bar::<(usize,)>"),
    ])
    func rustV0(mangled: String, expected: String) {
        #expect(demangle(mangled) == expected)
    }

    @Test(arguments: [
        "_RNqCs4fqI2P2rA04_11utf8_identsu30____7hkackfecea1cbdathfdh9hlq6y",  // Punycode
        "_RNvB_1a",  // a backreference to itself
        "_RNvC3foo",  // truncated
        "_R0NvC3foo3bar",  // an encoding version
    ])
    func rustV0UnsupportedIsKeptMangled(mangled: String) {
        #expect(demangle(mangled) == mangled)
    }

    @Test(arguments: [
        ("$s4main5helloyyF", "main.hello() -> ()"),
        ("_$s4main5helloyyF", "main.hello() -> ()"),
        ("$s16HeapscopeSymbols10SymbolizerC6frames2atSayAA11NativeFrameVGs6UInt64V_tF",
         "HeapscopeSymbols.Symbolizer.frames(at: Swift.UInt64) -> Swift.Array<HeapscopeSymbols.NativeFrame>"),
    ])
    func swift(mangled: String, expected: String) {
        #expect(demangle(mangled) == expected)
    }
}
