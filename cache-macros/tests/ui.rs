//! Compile errors for bad annotations, checked against reviewed `.stderr`
//! files (toolchain pinned in rust-toolchain.toml).

#[test]
fn bad_annotations_are_explained() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
